/** The prompt and limits for "Explain selection": phi-1.5 follows textbook question/answer layouts well. */

/** Selections longer than this are cut (phi-1.5 reads 2,048 tokens; the answer needs room too). */
export const MAX_EXPLAIN_CHARS = 4000;

export const EXPLAIN_STOPS = ['\nQuestion:', '\nExercise:', '\n\n\n\n'];

export function buildExplainPrompt(code: string, languageId: string): { prompt: string; truncated: boolean } {
  const normalised = code.replace(/\r\n/g, '\n').trimEnd();
  const truncated = normalised.length > MAX_EXPLAIN_CHARS;
  const shown = truncated ? normalised.slice(0, normalised.lastIndexOf('\n', MAX_EXPLAIN_CHARS) + 1 || MAX_EXPLAIN_CHARS) : normalised;
  const fence = '```';
  return {
    prompt: `${fence}${languageId}\n${shown}\n${fence}\n\nQuestion: What does the code above do? Explain it clearly, step by step.\nAnswer:`,
    truncated,
  };
}
