"""In-memory fakes of the ports (named fakes: they stand in for IMAP servers and the state store in
unit tests), held to the same contract suites as the real adapters."""
