/**
 * A gate for race tests: code under test waits at it (`await g.wait`) until the test opens it
 * (`g.open()`), or opens it to tell the test it got somewhere (`await reached.wait`). Opening it
 * again, or before anything waits, is harmless: a later wait goes straight through.
 */
export type Gate = { wait: Promise<void>; open: () => void };

export function gate(): Gate {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => {
    open = () => resolve();
  });
  return { wait, open };
}
