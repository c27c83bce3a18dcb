"""Catalogue imports: national code tables as bureaus receive them → a new catalogue edition (issue 12).

``sheets``   reading the files: CSV (UTF-8 or GB18030) and XLSX (a small zipfile + XML reader)
``layouts``  the tables: which column headings (NHSA downloads) feed which catalogue field
``edition``  the merge into the current edition (dated rows: added, retired, changed) and its diff
``cli``      ``presettle kb import``
"""
