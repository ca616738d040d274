"""Formatters: findings (text, json, sarif, github, junit) and run evidence."""
