//! Headless str0m client speaking the signalling protocol (tests and load tester).
