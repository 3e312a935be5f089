/**
 * Plots: Vega-Lite specifications rendered headless to SVG by Vega, and to PNG by resvg.
 * Raw Vega specifications (for what Vega-Lite cannot say, such as a flame graph's partition
 * layout) go through `vegaToSvg`. The libraries are loaded on first use (they take a few
 * hundred ms to import).
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

/** A raw Vega specification (https://vega.github.io/schema/vega/v6.json). */
export type VegaSpec = Record<string, unknown>;

export const VEGA_SCHEMA = 'https://vega.github.io/schema/vega/v6.json';

/**
 * Render a raw Vega specification to SVG text. With `titles`, every mark item that has a
 * `description` gets it as an SVG `<title>` child (which browsers show on hover) instead of
 * Vega's `aria-label`, which they do not show.
 */
export async function vegaToSvg(spec: VegaSpec, opts: { titles?: boolean } = {}): Promise<string> {
  const vega = await import('vega');
  const view = new vega.View(vega.parse({ $schema: VEGA_SCHEMA, background: 'white', ...spec } as Parameters<typeof vega.parse>[0]), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    return opts.titles ? ariaLabelsToTitles(svg) : svg;
  } finally {
    view.finalize();
  }
}

/** `<path … aria-label="x" role=… aria-roledescription=…/>` → `<path …><title>x</title></path>`. */
export function ariaLabelsToTitles(svg: string): string {
  return svg.replace(/<(path|rect|text)((?:\s[\w:-]+="[^"]*")*?)\saria-label="([^"]*)"((?:\s[\w:-]+="[^"]*")*)\s*\/>/g, (_m, tag: string, before: string, label: string, after: string) => {
    const rest = (before + after).replace(/\s(role|aria-roledescription)="[^"]*"/g, '');
    const text = label.replace(/&#xA;/g, '\n').replace(/&#xD;/g, '').replace(/&#x9;/g, '\t').replace(/&quot;/g, '"');
    return `<${tag}${rest}><title>${text}</title></${tag}>`;
  });
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
