package faxbridge

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/netip"
	"strings"

	"nhsrelay/relay"
)

// Refusal is how an intake refuses a fax with a reply of its own: an SMTP
// reply for T.37 (cmd turns it into smtpd's HandlerError), or an HTTP
// status. Text is all the client sees.
type Refusal struct {
	Code            int // SMTP basic code (4xx, 5xx)
	Subject, Detail int // RFC 3463 enhanced code subject and detail
	HTTP            int
	Text            string
	Err             error
}

func (e *Refusal) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("faxbridge: refused: %s: %v", e.Text, e.Err)
	}
	return "faxbridge: refused: " + e.Text
}

func (e *Refusal) Unwrap() error { return e.Err }

// T37 takes internet fax mail (ITU-T T.37 via RFC 3965 "simple mode"):
// messages to FAX=<number>@<Domain> (RFC 3192 §2) carrying the fax as
// TIFF-F attachments (image/tiff, RFC 3949, RFC 3302).
type T37 struct {
	Bridge *Bridge
	Domain string // the fax domain, "fax.relay.nhs.example"
	// Gateways are the networks of the T.37 fax gateways this relay takes
	// fax mail from without AUTH; an authenticated account may send it
	// from anywhere. Anyone else is refused: a fax becomes a clinical
	// message, so who may make one is the operator's choice.
	Gateways []netip.Prefix
}

// allowed reports whether the sender may hand in fax mail.
func (h *T37) allowed(env relay.Envelope) bool {
	if env.Account != "" {
		return true
	}
	ip, err := netip.ParseAddr(env.ClientIP)
	if err != nil {
		return false
	}
	for _, p := range h.Gateways {
		if p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

// Accepts reports whether addr is a fax address in our fax domain.
func (h *T37) Accepts(addr string) bool {
	_, err := h.number(addr)
	return err == nil
}

// number returns the number of an RFC 3192 address
// ("FAX=+441632960001/T33S=12@fax.example" → "+441632960001").
func (h *T37) number(addr string) (string, error) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !strings.EqualFold(addr[at+1:], h.Domain) {
		return "", errors.New("not in the fax domain")
	}
	return ParseFaxLocalPart(addr[:at])
}

// ParseFaxLocalPart reads the RFC 3192 §2 local part "FAX=<number>" with
// optional "/T33S=..." or other qualifiers after a slash.
func ParseFaxLocalPart(local string) (string, error) {
	local = strings.Trim(local, `"`)
	if len(local) < 5 || !strings.EqualFold(local[:4], "FAX=") {
		return "", errors.New(`local part does not start with "FAX="`)
	}
	n := local[4:]
	if i := strings.IndexByte(n, '/'); i >= 0 {
		n = n[:i]
	}
	if n == "" || strings.ContainsAny(n, " \t\r\n@") {
		return "", errors.New("no fax number after FAX=")
	}
	return n, nil
}

// Handle reads one message and receives each TIFF in it as a fax for
// each recipient number. It answers 451 when the bridge cannot store a
// fax, so the sending gateway keeps the message and tries again.
func (h *T37) Handle(ctx context.Context, env relay.Envelope, body io.Reader) (string, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		return "", err // smtpd answers its own reader's error
	}
	if !h.allowed(env) {
		return "", &Refusal{Code: 550, Subject: 7, Detail: 1,
			Text: "fax mail is taken only from this relay's fax gateways (fax.t37_gateways) or an authenticated account"}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "", &Refusal{Code: 554, Subject: 6, Detail: 0, Text: "the fax message could not be parsed as mail", Err: err}
	}
	tiffs, err := tiffParts(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, 0)
	if err != nil {
		return "", &Refusal{Code: 554, Subject: 6, Detail: 0, Text: "the fax message's MIME structure could not be read", Err: err}
	}
	if len(tiffs) == 0 {
		return "", &Refusal{Code: 554, Subject: 6, Detail: 1,
			Text: "no image/tiff attachment: T.37 simple mode (RFC 3965) sends the fax as TIFF-F"}
	}
	calling := strings.TrimSpace(msg.Header.Get("X-Fax-Calling-Number"))
	if from, err := mail.ParseAddress(msg.Header.Get("From")); err == nil && calling == "" {
		if at := strings.LastIndexByte(from.Address, '@'); at > 0 {
			if n, err := ParseFaxLocalPart(from.Address[:at]); err == nil {
				calling = n
			}
		}
	}
	csi := oneLine(msg.Header.Get("X-Fax-CSI"))
	received, _ := msg.Header.Date()
	// Every number is read before anything is stored: a recipient that is
	// not a fax address is refused, never skipped, so no fax is dropped
	// behind a 250 (smtpd passes only recipients Accepts took, so this
	// guards the contract).
	numbers := make([]string, 0, len(env.Recipients))
	for _, rcpt := range env.Recipients {
		called, err := h.number(rcpt)
		if err != nil {
			return "", &Refusal{Code: 550, Subject: 1, Detail: 1,
				Text: "<" + oneLine(rcpt) + "> is not a fax address (FAX=<number>@" + h.Domain + ")", Err: err}
		}
		numbers = append(numbers, called)
	}
	if len(numbers) == 0 {
		return "", &Refusal{Code: 554, Subject: 5, Detail: 0, Text: "no fax recipients"}
	}
	var refs []string
	for _, called := range numbers {
		for _, tif := range tiffs {
			out, err := h.Bridge.Receive(ctx, Inbound{Source: "t37", Called: called, Calling: calling, CSI: csi,
				Received: received, Data: tif})
			if err != nil {
				return "", &Refusal{Code: 451, Subject: 3, Detail: 0,
					Text: "the fax could not be stored now; try again later", Err: err}
			}
			refs = append(refs, out.Ref)
		}
	}
	return "fax received, reference " + strings.Join(refs, ", "), nil
}

// tiffParts returns the decoded image/tiff parts of an entity, looking
// into nested multiparts up to a small depth.
func tiffParts(ctype, cte string, body io.Reader, depth int) ([][]byte, error) {
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		mt = "text/plain" // RFC 2045 §5.2 default
	}
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		if depth >= 4 || params["boundary"] == "" {
			return nil, errors.New("multipart too deep or without boundary")
		}
		var out [][]byte
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return nil, err
			}
			sub, err := tiffParts(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		}
	case mt == "image/tiff" || mt == "image/tiff-fx":
		var r io.Reader = body
		switch strings.ToLower(strings.TrimSpace(cte)) {
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, &stripSpace{r: body})
		case "quoted-printable":
			r = quotedprintable.NewReader(body)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("image/tiff part: %w", err)
		}
		return [][]byte{data}, nil
	}
	return nil, nil
}

// stripSpace drops CR, LF, space and tab, for base64 bodies.
type stripSpace struct{ r io.Reader }

func (s *stripSpace) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}
