"""labels.csv for `irbis reid evaluate`: optional crop boxes."""

from __future__ import annotations

import pytest

from irbis.core.errors import IrbisError
from irbis.reid.annotations import read_labels


def test_box_columns_give_the_crop_and_empty_cells_the_whole_frame(tmp_path):
    f = tmp_path / "labels.csv"
    f.write_text(
        "path,individual_id,encounter,box_x,box_y,box_w,box_h\n"
        "a.jpg,Khan,e1,10,20.5,300,200\n"
        "b.jpg,Khan,e2,,,,\n"
    )
    a, b = read_labels(f)
    assert a.box == (10.0, 20.5, 300.0, 200.0) and a.image == tmp_path / "a.jpg"
    assert b.box is None


@pytest.mark.parametrize(
    "cells, match",
    [("10,20,,", "all be numbers or all empty"), ("10,20,0,5", "must be positive")],
)
def test_bad_boxes_name_the_row(tmp_path, cells, match):
    f = tmp_path / "labels.csv"
    f.write_text(f"path,individual_id,box_x,box_y,box_w,box_h\na.jpg,Khan,{cells}\n")
    with pytest.raises(IrbisError, match=rf"labels.csv:2: .*{match}"):
        read_labels(f)
