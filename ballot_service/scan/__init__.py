"""Reading scanned paper ballots: pages from scanner files (pages.py) and marks from a page
(omr.py). Pure image work: no database, no Flask."""
