/**
 * The configuration file lexer (see parser.ts for why it is hand-written).
 *
 * Tokens: WORD (bare text: keywords, numbers with units, addresses, names, `$macro`
 * references), STRING (double-quoted, with `\"` and `\\` escapes), `{`, `}`, `,`, `=`, NEWLINE
 * and EOF. `#` starts a comment that runs to the end of the line (not inside a string). A `\`
 * right before the end of a line joins the next line to this one, also inside a string.
 * Every token knows its file, line and column (1-based; columns count characters).
 */

export type TokenKind = 'word' | 'string' | '{' | '}' | ',' | '=' | 'newline' | 'eof';

export interface Position {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

export interface Token extends Position {
  readonly kind: TokenKind;
  /** The token's value: a string's contents without quotes and escapes, a word's text. */
  readonly text: string;
  /** The macro this token came from, when it was produced by expanding `$name`. */
  readonly macro?: string;
}

/** A syntax or validation error at a place in a configuration file. */
export class ConfigSyntaxError extends Error {
  override name = 'ConfigSyntaxError';
  constructor(
    readonly at: Position,
    /** The problem, without the position. */
    readonly detail: string,
    /** The offending source line, to show under the message with a caret. */
    readonly sourceLine?: string,
    options?: { cause?: unknown },
  ) {
    super(`${at.file}:${at.line}:${at.column}: ${detail}`, options);
  }

  /** The message, then the source line and a caret under the column (for a terminal). */
  pretty(): string {
    if (this.sourceLine === undefined) return this.message;
    const line = this.sourceLine.replace(/\t/g, ' ');
    return `${this.message}\n    ${line}\n    ${' '.repeat(Math.max(0, this.at.column - 1))}^`;
  }
}

/** How a token is named in "found ..." parts of error messages. */
export function describe(t: Token): string {
  const via = t.macro !== undefined ? ` (from macro $${t.macro})` : '';
  switch (t.kind) {
    case 'word':
      return `"${t.text}"${via}`;
    case 'string':
      return `the string ${JSON.stringify(t.text)}${via}`;
    case 'newline':
      return 'the end of the line';
    case 'eof':
      return 'the end of the file';
    default:
      return `"${t.kind}"`;
  }
}

const SPECIAL = new Set(['{', '}', ',', '=']);

function isWordChar(c: string): boolean {
  return !(c === ' ' || c === '\t' || c === '\r' || c === '\n' || c === '"' || c === '#' || c === '\\' || SPECIAL.has(c));
}

export class Lexer {
  private i = 0;
  private line = 1;
  private col = 1;
  private readonly lines: string[];

  constructor(
    private readonly text: string,
    readonly file: string,
    /** Set for the lexer of a macro's value: its tokens carry the use site's position. */
    private readonly expansion?: { readonly at: Position; readonly macro: string },
  ) {
    this.lines = text.split('\n');
  }

  /** Source line `n` (1-based) of this file, for error display. */
  sourceLine(n: number): string | undefined {
    return this.lines[n - 1]?.replace(/\r$/, '');
  }

  private error(at: Position, detail: string): ConfigSyntaxError {
    return new ConfigSyntaxError(at, detail, this.expansion ? undefined : this.sourceLine(at.line));
  }

  private peekChar(offset = 0): string {
    return this.text[this.i + offset] ?? '';
  }

  private advance(): string {
    const c = this.text[this.i++]!;
    if (c === '\n') {
      this.line++;
      this.col = 1;
    } else {
      this.col++;
    }
    return c;
  }

  /** `\` followed by an optional `\r` and a newline: a line continuation. */
  private atContinuation(): boolean {
    if (this.peekChar() !== '\\') return false;
    const n = this.peekChar(1);
    return n === '\n' || (n === '\r' && this.peekChar(2) === '\n');
  }

  private skipContinuation(): void {
    this.advance(); // backslash
    if (this.peekChar() === '\r') this.advance();
    this.advance(); // newline
  }

  private pos(): Position {
    if (this.expansion) return { file: this.expansion.at.file, line: this.expansion.at.line, column: this.expansion.at.column };
    return { file: this.file, line: this.line, column: this.col };
  }

  private token(kind: TokenKind, text: string, at: Position): Token {
    const p = this.expansion ? this.expansion.at : at;
    const t = { kind, text, file: p.file, line: p.line, column: p.column };
    return this.expansion ? { ...t, macro: this.expansion.macro } : t;
  }

  next(): Token {
    for (;;) {
      const c = this.peekChar();
      if (c === ' ' || c === '\t' || (c === '\r' && this.peekChar(1) === '\n')) {
        this.advance();
        continue;
      }
      if (this.atContinuation()) {
        this.skipContinuation();
        continue;
      }
      if (c === '#') {
        while (this.i < this.text.length && this.peekChar() !== '\n') this.advance();
        continue;
      }
      break;
    }
    const at = this.pos();
    if (this.i >= this.text.length) return this.token('eof', '', at);
    const c = this.peekChar();
    if (c === '\n') {
      this.advance();
      return this.token('newline', '\n', at);
    }
    if (SPECIAL.has(c)) {
      this.advance();
      return this.token(c as TokenKind, c, at);
    }
    if (c === '"') return this.string(at);
    if (c === '\\') {
      throw this.error(at, 'a "\\" outside a string must end the line (line continuation)');
    }
    if (c === '\r') throw this.error(at, 'a carriage return must be followed by a newline');
    let text = '';
    while (this.i < this.text.length) {
      if (this.atContinuation()) {
        // A continuation ends the word: `port\` + newline + `2023` is two words.
        break;
      }
      const d = this.peekChar();
      if (!isWordChar(d)) break;
      const code = d.charCodeAt(0);
      if (code < 0x20 || code === 0x7f) {
        throw this.error(this.pos(), `control character ${JSON.stringify(d)} is not allowed outside a string`);
      }
      text += this.advance();
    }
    return this.token('word', text, at);
  }

  private string(at: Position): Token {
    this.advance(); // opening quote
    let text = '';
    for (;;) {
      if (this.i >= this.text.length) throw this.error(at, 'unterminated string: expected a closing \'"\' before the end of the file');
      const c = this.peekChar();
      if (c === '\n') throw this.error(at, 'unterminated string: expected a closing \'"\' before the end of the line (end a line with "\\" to continue a string)');
      if (c === '"') {
        this.advance();
        return this.token('string', text, at);
      }
      if (c === '\\') {
        if (this.atContinuation()) {
          this.skipContinuation();
          continue;
        }
        const escAt = this.pos();
        this.advance();
        const e = this.peekChar();
        if (e === '"' || e === '\\') {
          text += this.advance();
          continue;
        }
        throw this.error(escAt, `unknown escape "\\${e}" in a string: expected \\" or \\\\`);
      }
      const code = c.charCodeAt(0);
      if ((code < 0x20 && c !== '\t') || code === 0x7f) {
        throw this.error(this.pos(), `control character ${JSON.stringify(c)} is not allowed in a string`);
      }
      text += this.advance();
    }
  }
}
