// Softmax with a temperature, cross-entropy for one target class, and its
// gradient, for the explorer of post 7. Plain ES2020 module: no dependencies, no DOM.
//
// With logits z and temperature τ the model's scores are u = z / τ, and
//   p = softmax(u),   loss = −log p_target = logsumexp(u) − u_target,
//   ∂loss/∂u = p − onehot(target),   ∂loss/∂z = (p − onehot(target)) / τ.
// At τ = 1 the two gradients are the same; the post's formula is ∂loss/∂u.
// Classes are indexed from 0 here, as in code; the page labels them 1 to C, as the post.

function checkLogits(logits) {
  if (!Array.isArray(logits) || logits.length === 0) {
    throw new Error("logits must be a non-empty list of numbers");
  }
  logits.forEach((z, i) => {
    if (!Number.isFinite(z)) throw new Error(`logit ${i} is ${z}; every logit must be a finite number`);
  });
}

function checkTemperature(temperature) {
  if (!(Number.isFinite(temperature) && temperature > 0)) {
    throw new Error(`the temperature must be a positive number, got ${temperature}`);
  }
}

function checkTarget(target, count) {
  if (!Number.isInteger(target) || target < 0 || target >= count) {
    throw new Error(`target ${target} is not a class index: there are ${count} classes, 0 to ${count - 1}`);
  }
}

// log(sum(exp(u))), stably: shift by the max so the largest exponent is 0.
export function logsumexp(u) {
  checkLogits(u);
  const m = Math.max(...u);
  let total = 0;
  for (const v of u) total += Math.exp(v - m);
  return m + Math.log(total);
}

// softmax(z / τ), stably (subtract the max first; the result is unchanged).
export function softmax(logits, temperature = 1) {
  checkLogits(logits);
  checkTemperature(temperature);
  const u = logits.map((z) => z / temperature);
  const m = Math.max(...u);
  const e = u.map((v) => Math.exp(v - m));
  const total = e.reduce((p, q) => p + q, 0);
  return e.map((v) => v / total);
}

// Everything the explorer shows for one setting of the controls.
export function crossEntropy(logits, target, temperature = 1) {
  checkLogits(logits);
  checkTemperature(temperature);
  checkTarget(target, logits.length);
  const u = logits.map((z) => z / temperature);
  // Shifted first, as backprop.softmax.log_softmax does: exact where p_t underflows.
  const m = Math.max(...u);
  const shifted = u.map((v) => v - m);
  const lse = Math.log(shifted.reduce((total, v) => total + Math.exp(v), 0));
  const probs = softmax(logits, temperature);
  const gradScores = probs.map((p, j) => p - (j === target ? 1 : 0));
  const gradLogits = gradScores.map((g) => g / temperature);
  return {
    scores: u,
    probs,
    loss: lse - shifted[target],
    gradScores,
    gradLogits,
    gradSum: gradScores.reduce((p, q) => p + q, 0),
  };
}

// Add the same number to every logit: softmax, loss and gradient do not move.
export function shiftLogits(logits, shift) {
  if (!Number.isFinite(shift)) throw new Error(`the shift must be a finite number, got ${shift}`);
  return logits.map((z) => z + shift);
}
