from hypothesis import given, settings
from hypothesis import strategies as st

from unet_zoo.models.sizes import (
    input_size_for_output,
    is_valid_input_size,
    nearest_valid_input_sizes,
    nearest_valid_sizes_text,
    output_size,
    size_rule,
)


def test_paper_sizes():
    assert output_size(572) == 388
    assert output_size(188) == 4
    assert output_size(512) is None
    assert nearest_valid_input_sizes(512) == (508, 524)
    assert output_size(508) == 324 and output_size(524) == 340


def test_smallest_valid_input_is_188():
    assert input_size_for_output(1) == 188
    assert not any(is_valid_input_size(s) for s in range(1, 188))


def test_padded_sizes():
    assert output_size(512, padding=1) == 512
    assert output_size(100, padding=1) is None
    assert nearest_valid_input_sizes(100, padding=1) == (96, 112)
    assert input_size_for_output(100, padding=1) == 112


@settings(max_examples=200, deadline=None)
@given(out=st.integers(1, 2000), depth=st.integers(1, 5))
def test_input_for_output_is_smallest_sufficient(out, depth):
    size = input_size_for_output(out, depth)
    assert is_valid_input_size(size, depth)
    assert output_size(size, depth) >= out
    smaller = [s for s in range(max(1, size - 2**depth * 2), size) if is_valid_input_size(s, depth)]
    assert all(output_size(s, depth) < out for s in smaller)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 3000), depth=st.integers(1, 5))
def test_valid_sizes_form_arithmetic_progression(size, depth):
    # For valid convolutions, usable sizes are exactly smallest + k * 2**depth and output = input - const.
    smallest = input_size_for_output(1, depth)
    expected = size >= smallest and (size - smallest) % 2**depth == 0
    assert is_valid_input_size(size, depth) == expected
    if expected:
        assert output_size(size, depth) == size - (smallest - output_size(smallest, depth))


@settings(max_examples=100, deadline=None)
@given(size=st.integers(1, 3000))
def test_nearest_sizes_bracket(size):
    below, above = nearest_valid_input_sizes(size)
    assert above >= size and is_valid_input_size(above)
    if below is not None:
        assert below <= size and is_valid_input_size(below)
        assert not any(is_valid_input_size(s) for s in range(below + 1, above) if s != size)


def test_size_rule_text():
    assert size_rule() == "output = input - 184; input = 12 + 16k, input >= 188"
    assert "multiple of 16" in size_rule(padding=1)


def test_nearest_sizes_text_lists_the_usable_sizes():
    assert nearest_valid_sizes_text(512) == "508 or 524"
    assert nearest_valid_sizes_text(100, padding=1) == "96 or 112"
    assert nearest_valid_sizes_text(5, padding=1) == "16"  # none below: no "None or 16"
