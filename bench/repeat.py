"""Writes a parquet file that is INPUT's line items N times over: N times the rows, the same
distinct facts (each fact's amounts N times larger). The memory goal compares peaks at
50M and 10M rows "for the same number of distinct facts"; this is that input.

usage: repeat.py INPUT.parquet N OUTPUT.parquet
"""
import sys

import pyarrow.parquet as pq

src, times, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
reader = pq.ParquetFile(src)
with pq.ParquetWriter(out, reader.schema_arrow, compression="snappy") as writer:
    for _ in range(times):
        for group in range(reader.num_row_groups):
            writer.write_table(reader.read_row_group(group))
