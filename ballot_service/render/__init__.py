"""Rendering for people: paper ballots, record PDFs, the 宣布稿, QR codes and the font they
embed. Takes plain data; reads no database."""
