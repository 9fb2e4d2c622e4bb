"""Parameter trees of realistic transformer leaf shapes (shared by the benchmarks).

Dependency-free, so that both the JAX benchmark and the PyTorch one (run in the
reference environment) time exactly the same leaves.
"""


def transformer_shapes(d: int, layers: int, vocab: int) -> dict:
  """Leaf name -> shape of a decoder-only transformer of width ``d``."""
  shapes = {"embed": (vocab, d), "final_norm": (d,)}
  for i in range(layers):
    shapes.update({
        f"l{i}_qkv": (d, 3 * d), f"l{i}_out": (d, d), f"l{i}_up": (d, 4 * d),
        f"l{i}_down": (4 * d, d), f"l{i}_norm1": (d,), f"l{i}_norm2": (d,),
        f"l{i}_bias": (4 * d,),
    })
  return shapes


SIZES = {
    "tiny": transformer_shapes(16, 1, 32),  # smoke test only
    "1M": transformer_shapes(128, 4, 2000),
    "20M": transformer_shapes(768, 2, 8000),
    "50M": transformer_shapes(1024, 3, 12000),
}
