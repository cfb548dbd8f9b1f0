"""Pure logic, no I/O: everything here is a function of its arguments."""
