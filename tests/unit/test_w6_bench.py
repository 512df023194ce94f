"""W6's tree (benchmarks/w6_cas.py): the files and bytes it promises, in mixed sizes, and a
figure for every row of its table."""

import inspect

from benchmarks import w6_cas


def test_the_tree_has_the_files_and_bytes_asked_for_in_mixed_sizes(tmp_path):
    w6_cas.make_tree(str(tmp_path), 500, 4 * w6_cas.MIB)
    count, size = w6_cas.tree_bytes(str(tmp_path))
    assert count == 500 and 4 * w6_cas.MIB - 500 <= size <= 4 * w6_cas.MIB
    sizes = sorted(p.stat().st_size for p in tmp_path.rglob("*.bin"))
    assert sizes[-1] > 100 * sizes[len(sizes) // 2]  # a few big files, most small


def test_every_row_is_measured():
    source = inspect.getsource(w6_cas.one_run)
    assert all(f'"{row.key}"' in source for row in w6_cas.rows(quick=False))
