"""Steps on the field's formats: Meta's TMK+PDQF hashes and the VSC 2022 / VCSL metrics on their files."""
