package faxbridge

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"mime"
	"mime/multipart"
	"net/textproto"
	"regexp"
	"strings"
	"time"

	"nhsrelay/directory"
)

// readFax is a received file, read far enough to route and render it.
type readFax struct {
	decoded *Decoded // nil for a PDF passed on as is
	pages   int
	hashes  []string
	csi     string
}

var rePDFPage = regexp.MustCompile(`/Type\s*/Page[^s]`)

// read decodes in.Data; the error's text is the dead-letter reason.
func (b *Bridge) read(in Inbound) (readFax, error) {
	if in.PDF || bytes.HasPrefix(in.Data, []byte("%PDF-")) {
		if !bytes.HasPrefix(in.Data, []byte("%PDF-")) {
			return readFax{}, fmt.Errorf("the file is said to be a PDF but does not start like one")
		}
		// QUIRK: a scanner's PDF is passed on as it came; its page count
		// is counted from the page objects, which a compressed object
		// stream hides (then 0).
		return readFax{pages: len(rePDFPage.FindAll(in.Data, -1))}, nil
	}
	d, err := Decode(in.Data, b.cfg.Limits)
	if err != nil {
		return readFax{}, fmt.Errorf("nothing in the file could be shown: %w", err)
	}
	return readFax{decoded: d, pages: len(d.Pages), hashes: d.Hashes, csi: d.CSI}, nil
}

// message builds the clinical message: a short text, the PDF, and the
// original file as received (RFC 2046 multipart/mixed).
func (b *Bridge) message(ctx context.Context, in Inbound, rec Record, fax readFax, ep directory.Endpoint, to string, repeats []string) ([]byte, error) {
	org := ep.ODS
	if o, err := b.cfg.Directory.Organisation(ctx, ep.ODS); err == nil {
		org = o.Name + " (" + o.ODS + ")"
	}
	title := Title(sender(rec.Calling, rec.CSI), rec.Pages)
	pdf := in.Data
	if fax.decoded != nil {
		var err error
		pdf, err = Render(fax.decoded, CoverInfo{Calling: rec.Calling, CallerName: in.CallerName, Called: rec.Called,
			Endpoint: ep.Address, Organisation: org, Received: in.Received, Ref: rec.Ref, Quality: in.Quality, Repeats: repeats})
		if err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	hdr := func(k, v string) { fmt.Fprintf(&buf, "%s: %s\r\n", k, v) }
	hdr("From", "NHS fax bridge <"+b.cfg.From+">")
	hdr("To", "<"+to+">")
	hdr("Subject", mime.QEncoding.Encode("utf-8", oneLine(title)))
	hdr("Date", in.Received.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+rec.Ref+"@"+b.cfg.From[strings.LastIndexByte(b.cfg.From, '@')+1:]+">")
	hdr("MIME-Version", "1.0")
	hdr("X-NHSRelay-Fax-Ref", rec.Ref)
	hdr("Content-Type", `multipart/mixed; boundary="`+mw.Boundary()+`"`)
	buf.WriteString("\r\n")

	var text strings.Builder
	fmt.Fprintf(&text, "%s, dialled %s, received %s.\r\n", title, orDash(rec.Called), in.Received.UTC().Format("2 Jan 2006 15:04 MST"))
	fmt.Fprintf(&text, "The fax is attached as a PDF, with the file as the fax server stored it.\r\nReference: %s\r\n", rec.Ref)
	if fax.decoded != nil {
		for _, p := range fax.decoded.Problems {
			fmt.Fprintf(&text, "\r\nNote: %s", oneLine(p))
		}
	}
	for _, r := range repeats {
		fmt.Fprintf(&text, "\r\nNote: %s", r)
	}
	text.WriteString("\r\n")
	if err := part(mw, "text/plain; charset=utf-8", "", []byte(text.String()), false); err != nil {
		return nil, err
	}
	if err := part(mw, "application/pdf", rec.Ref+".pdf", pdf, true); err != nil {
		return nil, err
	}
	if fax.decoded != nil {
		if err := part(mw, "image/tiff", rec.Ref+".tif", in.Data, true); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// part writes one body part, base64 with 76-character lines (RFC 2045
// §6.8) where b64, else as is.
func part(mw *multipart.Writer, ctype, filename string, body []byte, b64 bool) error {
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", ctype)
	if filename != "" {
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	}
	if b64 {
		h.Set("Content-Transfer-Encoding", "base64")
	}
	w, err := mw.CreatePart(h)
	if err != nil {
		return err
	}
	if !b64 {
		_, err = w.Write(body)
		return err
	}
	enc := base64.StdEncoding.EncodeToString(body)
	for len(enc) > 76 {
		if _, err := fmt.Fprintf(w, "%s\r\n", enc[:76]); err != nil {
			return err
		}
		enc = enc[76:]
	}
	_, err = fmt.Fprintf(w, "%s\r\n", enc)
	return err
}
