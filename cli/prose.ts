/**
 * Help text wrapped in the source: a tagged template whose lines are joined
 * with single spaces, a blank line separating paragraphs ("\n\n" in the
 * text). Each line's indentation and the blank lines around the text are
 * dropped, so the text reads the same however the source is indented.
 */
export function prose(strings: TemplateStringsArray, ...values: unknown[]): string {
  const text = strings.reduce((out, s, i) => out + s + (i < values.length ? String(values[i]) : ''), '');
  return text
    .trim()
    .split(/\n[ \t]*\n/)
    .map((p) =>
      p
        .split('\n')
        .map((l) => l.trim())
        .join(' '),
    )
    .join('\n\n');
}
