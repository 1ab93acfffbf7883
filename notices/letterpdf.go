package notices

import (
	"context"
	"fmt"
	"io"
	"time"

	"codeberg.org/go-pdf/fpdf"
)

// The window-envelope area the postal address must sit in, and the side
// margins (as GOV.UK Notify's letter specification gives them), in mm on
// A4 portrait.
const (
	addrLeft, addrRight = 24.6, 120.0
	addrTop, addrBottom = 39.5, 66.3
	sideMargin          = 15.0
)

// letterContent is what one letter says.
type letterContent struct {
	OrgName, OrgPhone string
	OrgAddress        []string
	Date              time.Time
	Recipient         []string // name, address lines, postcode
	Heading, Intro    string
	Details           [][2]string
	Instructions      []string
	Help              string
}

func (s *Service) letterContent(ctx context.Context, n Notice, now time.Time) letterContent {
	org, _ := s.cfg.Organisations.Organisation(ctx, n.Organisation)
	name := org.Name
	if name == "" {
		name = n.Organisation
	}
	v := newView(n, name)
	a := n.Appointment
	lc := letterContent{OrgName: name, OrgAddress: append(append([]string{}, org.Address...), org.Postcode), OrgPhone: org.Phone,
		Date: now, Heading: v.Heading, Intro: v.Intro, Instructions: v.Instructions}
	lc.Recipient = append([]string{a.PatientName}, a.Address.Lines...)
	lc.Recipient = append(lc.Recipient, a.Address.Postcode)
	lc.Details = [][2]string{{"When", v.When}, {"Where", a.Location}}
	if a.Clinic != "" {
		lc.Details = append(lc.Details, [2]string{"Clinic", a.Clinic})
	}
	if a.Department != "" {
		lc.Details = append(lc.Details, [2]string{"Department", a.Department})
	}
	if a.VideoLink != "" {
		lc.Details = append(lc.Details, [2]string{"Video appointment", a.VideoLink})
	}
	phone := a.ContactPhone
	if phone == "" {
		phone = org.Phone
	}
	lc.Help = "If you need help, contact " + name + "."
	if phone != "" {
		lc.Help = "If you need help, call " + name + " on " + phone + "."
	}
	return lc
}

// writeLetters writes letters as one A4 PDF, one letter per page, the
// patient's address inside the window area. Text is in the PDF core font
// (Windows-1252): a character outside it prints as "?".
func writeLetters(w io.Writer, letters []letterContent) error {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetMargins(sideMargin, 15, sideMargin)
	pdf.SetAutoPageBreak(true, 20)
	pdf.SetTitle("Appointment letters", true)
	pdf.SetCreator("nhsrelay", true)
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	width := 210 - 2*sideMargin
	for _, l := range letters {
		pdf.AddPage()
		// The sender, top right, clear of the window.
		pdf.SetFont("Helvetica", "B", 11)
		pdf.SetXY(125, 15)
		pdf.MultiCell(70, 5, tr(l.OrgName), "", "L", false)
		pdf.SetFont("Helvetica", "", 10)
		for _, line := range l.OrgAddress {
			if line != "" {
				pdf.SetX(125)
				pdf.MultiCell(70, 4.5, tr(line), "", "L", false)
			}
		}
		// The recipient, inside the window (x 24.6–120, y 39.5–66.3 mm).
		lh := min(4.2, (addrBottom-addrTop-1)/float64(len(l.Recipient)))
		pdf.SetFont("Helvetica", "", 10)
		y := addrTop + 0.5
		for _, line := range l.Recipient {
			pdf.SetXY(addrLeft+0.5, y)
			pdf.CellFormat(addrRight-addrLeft-1, lh, tr(line), "", 0, "L", false, 0, "")
			y += lh
		}
		pdf.SetXY(sideMargin, 75)
		pdf.SetFont("Helvetica", "", 11)
		pdf.CellFormat(width, 6, l.Date.In(london).Format("2 January 2006"), "", 1, "R", false, 0, "")
		pdf.Ln(4)
		pdf.SetFont("Helvetica", "B", 16)
		pdf.MultiCell(width, 8, tr(l.Heading), "", "L", false)
		pdf.Ln(2)
		pdf.SetFont("Helvetica", "", 12)
		pdf.MultiCell(width, 6, tr("Dear "+l.Recipient[0]+","), "", "L", false)
		pdf.Ln(2)
		pdf.MultiCell(width, 6, tr(l.Intro), "", "L", false)
		pdf.Ln(3)
		for _, d := range l.Details {
			pdf.SetFont("Helvetica", "B", 12)
			pdf.CellFormat(40, 6, tr(d[0]), "", 0, "L", false, 0, "")
			pdf.SetFont("Helvetica", "", 12)
			pdf.MultiCell(width-40, 6, tr(d[1]), "", "L", false)
		}
		if len(l.Instructions) > 0 {
			pdf.Ln(3)
			pdf.SetFont("Helvetica", "B", 12)
			pdf.MultiCell(width, 6, "Before your appointment", "", "L", false)
			pdf.SetFont("Helvetica", "", 12)
			for _, p := range l.Instructions {
				pdf.MultiCell(width, 6, tr(p), "", "L", false)
			}
		}
		pdf.Ln(3)
		pdf.MultiCell(width, 6, tr(l.Help), "", "L", false)
	}
	if err := pdf.Error(); err != nil {
		return fmt.Errorf("notices: letter PDF: %w", err)
	}
	return pdf.Output(w)
}
