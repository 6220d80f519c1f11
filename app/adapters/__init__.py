"""The outside world behind small interfaces: database, Alipay, bank statement files."""
