/**
 * Plots: Vega-Lite specifications rendered headless to SVG by Vega, and to PNG by resvg.
 * The libraries are loaded on first use (they take a few hundred ms to import).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** A Vega-Lite specification (kept loose: vega-lite's own types are checked when it compiles). */
export type PlotSpec = Record<string, unknown>;

export const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

/** Render to SVG text. */
export async function toSvg(spec: PlotSpec): Promise<string> {
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  const compiled = vl.compile({ $schema: SCHEMA, background: 'white', ...spec } as Parameters<typeof vl.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export async function svgToPng(svg: string, scale = 2): Promise<Buffer> {
  const { Resvg } = await import('@resvg/resvg-js');
  const r = new Resvg(svg, { background: 'white', fitTo: { mode: 'zoom', value: scale }, font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' } });
  return r.render().asPng();
}

/** Write `spec` to `file`: `.svg` or `.png` by extension. Returns the path. */
export async function writePlot(spec: PlotSpec, file: string): Promise<string> {
  const svg = await toSvg(spec);
  await mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const ext = path.extname(file).toLowerCase();
  if (ext === '.svg') await writeFile(file, svg);
  else if (ext === '.png') await writeFile(file, await svgToPng(svg));
  else throw new Error(`plot file must end in .svg or .png: ${file}`);
  return file;
}

/** Write one plot in each format asked (`svg`, `png`) as `<dir>/<name>.<ext>`. */
export async function writePlots(spec: PlotSpec, dir: string, name: string, formats: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const f of formats) out.push(await writePlot(spec, path.join(dir, `${name}.${f}`)));
  return out;
}
