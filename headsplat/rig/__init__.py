"""Head rigs: topology plus a pure function from parameters to posed vertices."""
