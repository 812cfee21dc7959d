/** A directive of a parsed nginx.conf; `block` is set for `name args { ... }`. */
export interface Directive {
  readonly name: string;
  readonly args: string[];
  readonly block?: Directive[];
}

/**
 * Minimal nginx.conf parser for tests: words, quoted strings (quotes stripped, escapes kept
 * verbatim), `;`, `{`, `}` and comments. Throws on unbalanced braces or a missing `;`.
 */
export function parseNginxConf(text: string): Directive[] {
  const tokens = tokenize(text);
  let pos = 0;

  function parseBlock(nested: boolean): Directive[] {
    const directives: Directive[] = [];
    let words: string[] = [];
    while (pos < tokens.length) {
      const token = tokens[pos++];
      if (token === ";") {
        if (words.length === 0) throw new Error(`empty directive at token ${pos}`);
        directives.push({ name: words[0], args: words.slice(1) });
        words = [];
      } else if (token === "{") {
        const header = words;
        words = [];
        directives.push({ name: header[0], args: header.slice(1), block: parseBlock(true) });
      } else if (token === "}") {
        if (!nested) throw new Error("unexpected }");
        if (words.length > 0) throw new Error(`missing ; after ${words.join(" ")}`);
        return directives;
      } else {
        words.push(token);
      }
    }
    if (nested) throw new Error("unexpected end of file: missing }");
    if (words.length > 0) throw new Error(`missing ; after ${words.join(" ")}`);
    return directives;
  }

  return parseBlock(false);
}

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === "#") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (ch === ";" || ch === "{" || ch === "}") {
      tokens.push(ch);
      i++;
    } else if (ch === '"' || ch === "'") {
      let j = i + 1;
      while (j < text.length && text[j] !== ch) j += text[j] === "\\" ? 2 : 1;
      if (j >= text.length) throw new Error(`unterminated string at ${i}`);
      tokens.push(text.slice(i + 1, j));
      i = j + 1;
    } else {
      let j = i;
      while (j < text.length && !/[\s;{}"']/.test(text[j])) j++;
      tokens.push(text.slice(i, j));
      i = j;
    }
  }
  return tokens;
}

/** Every directive named `name` directly inside `directives`. */
export function all(directives: Directive[], name: string, firstArg?: string): Directive[] {
  return directives.filter((d) => d.name === name && (firstArg === undefined || d.args[0] === firstArg));
}

/** The single directive named `name` (optionally with that first argument); throws unless exactly one. */
export function one(directives: Directive[], name: string, firstArg?: string): Directive {
  const found = all(directives, name, firstArg);
  if (found.length !== 1) {
    throw new Error(`expected exactly one "${name}${firstArg ? ` ${firstArg}` : ""}", found ${found.length}`);
  }
  return found[0];
}

/** The children of the single block directive named `name`. */
export function blockOf(directives: Directive[], name: string, firstArg?: string): Directive[] {
  const found = one(directives, name, firstArg);
  if (!found.block) throw new Error(`"${name}" is not a block`);
  return found.block;
}

/** `args` of the single directive `name`, joined with spaces. */
export function value(directives: Directive[], name: string): string {
  return one(directives, name).args.join(" ");
}

/** Every directive at any depth, depth first. */
export function flatten(directives: Directive[]): Directive[] {
  return directives.flatMap((d) => [d, ...(d.block ? flatten(d.block) : [])]);
}
