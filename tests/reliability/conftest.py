import sys
from pathlib import Path

# the fairseq CLI runner and the trainer helpers live next to the tests that use them most
sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))
sys.path.insert(0, str(Path(__file__).parents[1] / "trainer"))
