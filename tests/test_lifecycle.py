"""``wsmanager.connection._lifecycle``: every state change is checked against one table."""

from __future__ import annotations

import logging
import pickle

import pytest

from wsmanager.connection._lifecycle import TRANSITIONS, InvalidTransition, Lifecycle, State, new_socket_id

# In State's order, not the sets' (which differs between processes: xdist's workers must agree).
ALLOWED = [(a, b) for a in State for b in State if b in TRANSITIONS[a]]
FORBIDDEN = [(a, b) for a in State for b in State if a is not b and b not in TRANSITIONS[a]]


def at(state: State) -> Lifecycle:
    life = Lifecycle("s1")
    life.state = state
    return life


@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_allowed_moves_change_the_state(current: State, target: State) -> None:
    life = at(current)
    assert life.move(target) is True
    assert life.state is target


@pytest.mark.parametrize(("current", "target"), FORBIDDEN)
def test_forbidden_moves_raise_and_change_nothing(current: State, target: State) -> None:
    life = at(current)
    with pytest.raises(InvalidTransition) as caught:
        life.move(target)
    assert (caught.value.current, caught.value.target) == (current, target)
    assert life.state is current


def test_the_table_forbids_going_back() -> None:
    assert FORBIDDEN, "the table allows every move"
    assert (State.CLOSED, State.OPEN) in FORBIDDEN and (State.CLOSING, State.OPEN) in FORBIDDEN


@pytest.mark.parametrize("state", list(State))
def test_moving_to_the_current_state_is_a_no_op(state: State) -> None:
    life = at(state)
    assert life.move(state) is False
    assert life.state is state


def test_was_open_remembers_an_open_socket_after_it_closed() -> None:
    never, opened = Lifecycle(), Lifecycle()
    never.move(State.CLOSING)
    never.move(State.CLOSED)
    for target in (State.OPEN, State.CLOSING, State.CLOSED):
        opened.move(target)
    assert (never.was_open, opened.was_open) == (False, True)


def test_each_move_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="wsmanager.connection._lifecycle"):
        Lifecycle("abc").move(State.OPEN)
    assert "socket abc: connecting -> open" in caplog.text


def test_invalid_transition_pickles() -> None:
    error = pickle.loads(pickle.dumps(InvalidTransition(State.CLOSED, State.OPEN)))
    assert (error.current, error.target) == (State.CLOSED, State.OPEN)
    assert str(error) == "cannot move from closed to open"


def test_socket_ids_are_long_random_and_never_look_like_options() -> None:
    ids = {new_socket_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(sid) == 43 and not sid.startswith("-") for sid in ids)
