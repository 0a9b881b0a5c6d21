//! Unit tests of the loop under paused time.
