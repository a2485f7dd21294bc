"""The synthetic receivables book used by the tests, the demo and the benchmarks.

``generate_book`` returns a validated Book; ``write_book_folder`` writes one as a data
folder (optionally with injected bad rows); ``generate_book_with_truth`` adds the latent
risk table the explanation tests check against.
"""

from features.synthetic.generator import (
    generate_book,
    generate_book_with_truth,
    write_book_folder,
)

__all__ = ["generate_book", "generate_book_with_truth", "write_book_folder"]
