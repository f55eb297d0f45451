"""The README's table of per-size presets ("Presets per size, as the reference scripts ran them") against the shipped
config files: every cell equals what `lethe config --config F --get KEY` prints, and every preset under configs/icu,
configs/ku, configs/po and configs/llmu has a row (one `lethe config --dump` per file; numbers compare as numbers).
Run by CTest (docs.presets)."""
import os
import pathlib
import re
import subprocess
import unittest

import yaml

BIN = os.environ.get("LETHE_BIN", "build/lethe")
ROOT = pathlib.Path(__file__).resolve().parents[2]
COLUMNS = {"method": "unlearn.method", "dtype": "model.dtype", "ZeRO": "zero.stage", "batch": "unlearn.batch_size",
           "micro": "unlearn.micro_batch_size", "val batch": "unlearn.val_batch_size", "lr": "optimizer.lr",
           "refine": "unlearn.refine", "stop": "unlearn.stop_logic", "MA <": "unlearn.acc", "EL10 <": "unlearn.el",
           "EL": "unlearn.el_variant", "max epochs": "unlearn.max_epochs"}


def table():
    text = (ROOT / "README.md").read_text()
    body = re.search(r"<!-- presets:begin -->\n(.*?)<!-- presets:end -->", text, re.S)
    assert body, "README.md: presets table markers not found"
    lines = [l for l in body.group(1).splitlines() if l.startswith("|")]
    cells = lambda l: [c.strip() for c in l.strip().strip("|").split("|")]
    header = cells(lines[0])
    return header, [dict(zip(header, cells(l))) for l in lines[2:]]


class PresetsTable(unittest.TestCase):
    def test_every_cell_equals_the_resolved_config(self):
        header, rows = table()
        self.assertEqual(header[0], "config")
        self.assertEqual(set(header[1:]), set(COLUMNS))
        for row in rows:
            path = row["config"].strip("`")
            r = subprocess.run([BIN, "config", "--config", ROOT / path, "--dump"], capture_output=True, text=True,
                               cwd=ROOT)
            self.assertEqual(r.returncode, 0, r.stderr)
            cfg = yaml.safe_load(r.stdout)
            for col, key in COLUMNS.items():
                section, name = key.split(".")
                want, cell = cfg[section][name], row[col]
                if isinstance(want, (int, float)) and not isinstance(want, bool):
                    self.assertEqual(float(cell), float(want), f"{path} {key}")
                else:
                    self.assertEqual(cell, str(want), f"{path} {key}")

    def test_every_preset_has_a_row(self):
        _, rows = table()
        listed = {r["config"].strip("`") for r in rows}
        shipped = {str(p.relative_to(ROOT)) for d in ("icu", "ku", "po", "llmu")
                   for p in (ROOT / "configs" / d).glob("neo*.yaml")}
        self.assertEqual(listed, shipped)


if __name__ == "__main__":
    unittest.main()
