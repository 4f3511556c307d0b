import sys
from pathlib import Path

# Run the plugin's tests from a source checkout without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
