// Package ods reads the NHS Organisation Data Service (ODS) GP practice
// file, epraccur.csv, and imports it into the directory.
//
// The file has no header row and 27 quoted columns (ODS "GP Practices"
// data description): 1 organisation code, 2 name, 3 national grouping,
// 4 high level health geography, 5–9 address lines, 10 postcode, 11 open
// date, 12 close date (YYYYMMDD), 13 status (A, C, D, P), 14 organisation
// sub-type, 15 commissioner, 16–17 join/left provider dates, 18 contact
// telephone, 19–21 null, 22 amended record indicator, 23 null, 24
// provider/purchaser, 25 null, 26 prescribing setting (4 = GP practice),
// 27 null. Fields are quoted as RFC 4180 §2 describes; a record never
// spans lines in ODS files, so this package parses one line at a time and
// a malformed line (an unbalanced quote, too few columns) is rejected on
// its own without swallowing the lines after it, as encoding/csv would.
//
// Parse turns the file into directory.Organisation values plus a list of
// Rejected rows (line number and reason). Import parses and hands the
// good rows to (*directory.Directory).ImportOrganisations in one write;
// with strict set, any rejected row fails the whole import and nothing is
// written. ParseSuccessors reads the ODS successor file (succ.csv).
package ods
