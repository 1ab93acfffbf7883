package dsn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// ErrMalformed means Parse was given something that is not a delivery
// status notification this package can read.
var ErrMalformed = errors.New("dsn: malformed delivery status notification")

// Action is a recipient's Action field (RFC 3464 §2.3.3).
type Action string

const (
	Failed    Action = "failed"
	Delayed   Action = "delayed"
	Delivered Action = "delivered"
	Relayed   Action = "relayed"
	Expanded  Action = "expanded"
)

// MaxHeaderBytes bounds the original header block carried in the third part
// and read back by Parse.
const MaxHeaderBytes = 128 << 10

// Recipient is one per-recipient group (RFC 3464 §2.3).
type Recipient struct {
	FinalRecipient string // address, written as "rfc822; <addr>"
	// OriginalRecipient is the sender's ORCPT (RFC 3461 §4.2) as
	// "type;address", written as Original-Recipient (RFC 3464 §2.3.1);
	// "" omits it.
	OriginalRecipient string
	Action            Action    // failed, delayed, delivered or relayed
	Status            string    // enhanced status code "4.4.1" (RFC 3463)
	RemoteMTA         string    // host name of the next hop, written as "dns; <host>"; "" if none
	DiagnosticType    string    // "smtp" for a remote reply; "" omits Diagnostic-Code
	Diagnostic        string    // the remote reply, e.g. "550 5.1.1 no such user"
	LastAttemptDate   time.Time // zero omits the field
	WillRetryUntil    time.Time // only for delayed; zero omits the field
	// HeldUntil marks a failed recipient that the reporting MTA holds
	// rather than gives up on: the message was not sent, is looked at
	// again, and fails for good at this time if it still cannot be sent
	// safely. Written as the extension field X-NHSRelay-Held-Until
	// (RFC 3464 §2.4); zero for a final failure.
	HeldUntil time.Time
}

// Report is one DSN.
type Report struct {
	ReportingMTA string    // our host name
	QueueID      string    // original queue ID, as the X-NHSRelay-Queue-ID extension field
	EnvelopeID   string    // the sender's ENVID (RFC 3461 §4.4), as Original-Envelope-Id (RFC 3464 §2.2.1)
	ArrivalDate  time.Time // when the original was accepted
	Recipients   []Recipient
	Headers      []byte // the original header block only, never its body

	// Fields of the notification message itself.
	From        string    // the report's sender, e.g. "MAILER-DAEMON@relay.nhs.example"
	To          string    // the original envelope sender
	Date        time.Time // when the report was made
	MessageID   string    // without angle brackets
	Explanation string    // extra words for the human part (Write only)

	// Human is the text of the human-readable part (Parse only).
	Human string
}

// validClass reports whether c is an RFC 3463 §3.1 class: 2 success, 4
// persistent transient failure, 5 permanent failure.
func validClass(c byte) bool {
	switch c {
	case '2', '4', '5':
		return true
	}
	return false
}

// validStatus checks RFC 3464 §2.3.4 status-code: class "." subject "." detail.
func validStatus(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !validClass(parts[0][0]) {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

func validAction(a Action) bool {
	switch a {
	case Failed, Delayed, Delivered, Relayed, Expanded:
		return true
	}
	return false
}

// clean makes s safe as one header field value: control characters become
// spaces, runs of spaces collapse, the ends are trimmed. It is idempotent,
// so what Parse returns survives Write unchanged.
func clean(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == ' ' {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// maxField keeps every written line under RFC 5322 §2.1.1's 998 octets.
const maxField = 900

func field(s string) string {
	s = clean(s)
	if len(s) > maxField {
		s = strings.ToValidUTF8(s[:maxField], "")
		s = strings.TrimRight(s, " ")
	}
	return s
}

const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700" // RFC 5322 §3.3

// Write renders r as a complete RFC 5322 message with CRLF line endings.
func Write(w io.Writer, r Report) error {
	if len(r.Recipients) == 0 {
		return errors.New("dsn: write: no recipients")
	}
	for _, rc := range r.Recipients {
		if !validAction(rc.Action) {
			return fmt.Errorf("dsn: write: action %q is not an RFC 3464 action", rc.Action)
		}
		if !validStatus(rc.Status) {
			return fmt.Errorf("dsn: write: status %q is not an RFC 3463 code", rc.Status)
		}
	}
	if len(r.Headers) > MaxHeaderBytes {
		return fmt.Errorf("dsn: write: original header is %d bytes, limit %d", len(r.Headers), MaxHeaderBytes)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)

	h := func(k, v string) { fmt.Fprintf(&buf, "%s: %s\r\n", k, v) }
	subject := "Undelivered Mail Returned to Sender"
	switch {
	case anyAction(r.Recipients, Failed):
	case anyAction(r.Recipients, Delayed):
		subject = "Delayed Mail (still being retried)"
	default: // delivered or relayed: a receipt (RFC 3461 §6.2.2)
		subject = "Delivery receipt: message delivered"
		if anyAction(r.Recipients, Relayed) {
			subject = "Delivery receipt: message relayed"
		}
	}
	h("From", "Mail Delivery System <"+field(r.From)+">")
	h("To", "<"+field(r.To)+">")
	h("Subject", subject)
	h("Date", r.Date.Format(dateLayout))
	if r.MessageID != "" {
		h("Message-ID", "<"+field(r.MessageID)+">")
	}
	h("Auto-Submitted", "auto-replied") // RFC 3834 §5: no auto-replies to this
	h("MIME-Version", "1.0")
	h("Content-Type", `multipart/report; report-type=delivery-status; boundary="`+mw.Boundary()+`"`)
	buf.WriteString("\r\n")

	// Part 1: RFC 3464 §2 "a human readable explanation".
	pw, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=utf-8"},
		"Content-Transfer-Encoding": {"8bit"},
	})
	if err != nil {
		return fmt.Errorf("dsn: write: %w", err)
	}
	io.WriteString(pw, humanText(r))

	// Part 2: RFC 3464 §2.1 message/delivery-status.
	pw, err = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"message/delivery-status"}})
	if err != nil {
		return fmt.Errorf("dsn: write: %w", err)
	}
	var ds bytes.Buffer
	f := func(k, v string) { fmt.Fprintf(&ds, "%s: %s\r\n", k, v) }
	if r.EnvelopeID != "" {
		f("Original-Envelope-Id", field(r.EnvelopeID)) // §2.2.1
	}
	f("Reporting-MTA", "dns; "+field(r.ReportingMTA)) // §2.2.2
	if r.QueueID != "" {
		f("X-NHSRelay-Queue-ID", field(r.QueueID)) // §2.4 extension field
	}
	if !r.ArrivalDate.IsZero() {
		f("Arrival-Date", r.ArrivalDate.Format(dateLayout)) // §2.2.5
	}
	for _, rc := range r.Recipients {
		ds.WriteString("\r\n")
		if rc.OriginalRecipient != "" {
			f("Original-Recipient", field(rc.OriginalRecipient)) // §2.3.1
		}
		f("Final-Recipient", "rfc822; "+field(rc.FinalRecipient)) // §2.3.2
		f("Action", string(rc.Action))                            // §2.3.3
		f("Status", rc.Status)                                    // §2.3.4
		if rc.RemoteMTA != "" {
			f("Remote-MTA", "dns; "+field(rc.RemoteMTA)) // §2.3.5
		}
		if rc.DiagnosticType != "" {
			f("Diagnostic-Code", field(rc.DiagnosticType)+"; "+field(rc.Diagnostic)) // §2.3.6
		}
		if !rc.LastAttemptDate.IsZero() {
			f("Last-Attempt-Date", rc.LastAttemptDate.Format(dateLayout)) // §2.3.7
		}
		if !rc.WillRetryUntil.IsZero() {
			f("Will-Retry-Until", rc.WillRetryUntil.Format(dateLayout)) // §2.3.9
		}
		if !rc.HeldUntil.IsZero() {
			f("X-NHSRelay-Held-Until", rc.HeldUntil.Format(dateLayout)) // §2.4 extension field
		}
	}
	pw.Write(ds.Bytes())

	// Part 3: RFC 6522 §4 text/rfc822-headers: the header only, never the
	// clinical body.
	pw, err = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/rfc822-headers"}})
	if err != nil {
		return fmt.Errorf("dsn: write: %w", err)
	}
	pw.Write(r.Headers)
	if err := mw.Close(); err != nil {
		return fmt.Errorf("dsn: write: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("dsn: write: %w", err)
	}
	return nil
}

func anyAction(rs []Recipient, a Action) bool {
	for _, r := range rs {
		if r.Action == a {
			return true
		}
	}
	return false
}

// heldOnly reports whether every failed recipient is held rather than
// given up on, and there is at least one.
func heldOnly(rs []Recipient) (any, all bool) {
	all = true
	for _, r := range rs {
		if r.Action != Failed {
			continue
		}
		if r.HeldUntil.IsZero() {
			all = false
		} else {
			any = true
		}
	}
	return any, all
}

func humanText(r Report) string {
	var b strings.Builder
	b.WriteString("This is the mail system at host " + field(r.ReportingMTA) + ".\r\n\r\n")
	someHeld, allHeld := heldOnly(r.Recipients)
	switch {
	case !anyAction(r.Recipients, Failed) && !anyAction(r.Recipients, Delayed):
		b.WriteString("This is a delivery receipt for your message, which you or your account asked for.\r\n")
		b.WriteString("Delivered means it reached the recipient's mailbox; relayed means it was\r\n")
		b.WriteString("handed to the next relay, which does not send receipts itself.\r\n")
	case anyAction(r.Recipients, Failed) && !allHeld:
		b.WriteString("Your message could not be delivered to one or more recipients.\r\n")
		b.WriteString("It has not been sent to them and will not be retried.\r\n")
		if someHeld {
			b.WriteString("For those marked held it has not been sent either; it stays held on this\r\n")
			b.WriteString("relay, as explained below, until the date given.\r\n")
		}
	case someHeld:
		b.WriteString("Your message has not been sent to one or more recipients: it is held\r\n")
		b.WriteString("on this relay, as explained below. It is sent if that becomes safe before\r\n")
		b.WriteString("the date given; otherwise you will be told again then. If it is urgent,\r\n")
		b.WriteString("reach the recipient another way.\r\n")
	default:
		b.WriteString("Your message has not yet been delivered to one or more recipients.\r\n")
		b.WriteString("This is only a warning; you do not need to send it again.\r\n")
	}
	if e := field(r.Explanation); e != "" {
		b.WriteString("\r\n" + e + "\r\n")
	}
	b.WriteString("\r\nThe message's content is not included; its header is attached.\r\n\r\n")
	for _, rc := range r.Recipients {
		action := string(rc.Action)
		if rc.Action == Failed && !rc.HeldUntil.IsZero() {
			action = "held, not sent"
		}
		fmt.Fprintf(&b, "<%s>: %s (%s)", field(rc.FinalRecipient), action, rc.Status)
		if rc.Diagnostic != "" {
			b.WriteString(": " + field(rc.Diagnostic))
		}
		if !rc.WillRetryUntil.IsZero() {
			b.WriteString("; will retry until " + rc.WillRetryUntil.Format(dateLayout))
		}
		if !rc.HeldUntil.IsZero() {
			b.WriteString("; held until " + rc.HeldUntil.Format(dateLayout) + ", then given up")
		}
		b.WriteString("\r\n")
	}
	return b.String()
}

// Parse reads a DSN written by Write or by another MTA following RFC 3464.
func Parse(rd io.Reader) (*Report, error) {
	msg, mr, err := readReport(rd, "delivery-status")
	if err != nil {
		return nil, err
	}
	r := &Report{
		From:      strings.TrimSuffix(afterAngle(msg.Header.Get("From")), ">"),
		To:        strings.Trim(field(msg.Header.Get("To")), "<>"),
		MessageID: strings.Trim(field(msg.Header.Get("Message-Id")), "<>"),
	}
	if d := msg.Header.Get("Date"); d != "" {
		if r.Date, err = mail.ParseDate(d); err != nil {
			return nil, fmt.Errorf("%w: Date: %v", ErrMalformed, err)
		}
	}
	sawStatus := false
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		data, err := io.ReadAll(io.LimitReader(p, MaxHeaderBytes+1))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if len(data) > MaxHeaderBytes {
			return nil, fmt.Errorf("%w: part larger than %d bytes", ErrMalformed, MaxHeaderBytes)
		}
		switch pt {
		case "text/plain":
			if r.Human == "" {
				r.Human = string(data)
			}
		case "message/delivery-status":
			if sawStatus {
				return nil, fmt.Errorf("%w: two delivery-status parts", ErrMalformed)
			}
			sawStatus = true
			if err := parseStatus(r, data); err != nil {
				return nil, err
			}
		case "text/rfc822-headers":
			r.Headers = data
		}
	}
	if !sawStatus {
		return nil, fmt.Errorf("%w: no message/delivery-status part", ErrMalformed)
	}
	return r, nil
}

// readReport reads a multipart/report (RFC 6522) of reportType and returns
// its header and a reader of its parts.
func readReport(rd io.Reader, reportType string) (*mail.Message, *multipart.Reader, error) {
	msg, err := mail.ReadMessage(bufio.NewReader(io.LimitReader(rd, 4<<20)))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || !strings.EqualFold(params["report-type"], reportType) || params["boundary"] == "" {
		return nil, nil, fmt.Errorf("%w: not multipart/report; report-type=%s", ErrMalformed, reportType)
	}
	return msg, multipart.NewReader(msg.Body, params["boundary"]), nil
}

func afterAngle(s string) string {
	s = field(s)
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// parseStatus reads the per-message group and the per-recipient groups
// (RFC 3464 §2.1: groups of fields separated by blank lines).
func parseStatus(r *Report, data []byte) error {
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(data)))
	first := true
	for {
		h, err := tr.ReadMIMEHeader()
		if len(h) == 0 && err != nil {
			if err == io.EOF {
				break
			}
			return fmt.Errorf("%w: delivery-status: %v", ErrMalformed, err)
		}
		if len(h) == 0 {
			if err == io.EOF {
				break
			}
			continue
		}
		if first {
			first = false
			if err := parsePerMessage(r, h); err != nil {
				return err
			}
		} else {
			rc, err := parseRecipient(h)
			if err != nil {
				return err
			}
			r.Recipients = append(r.Recipients, rc)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: delivery-status: %v", ErrMalformed, err)
		}
	}
	if first {
		return fmt.Errorf("%w: empty delivery-status", ErrMalformed)
	}
	if len(r.Recipients) == 0 {
		return fmt.Errorf("%w: no per-recipient fields", ErrMalformed)
	}
	return nil
}

// typed splits "type; value" (RFC 3464 §2.1.2 address-type and friends).
func typed(s string) (typ, val string, ok bool) {
	t, v, ok := strings.Cut(field(s), ";")
	if !ok {
		return "", "", false
	}
	return strings.ToLower(field(t)), field(v), true
}

func parsePerMessage(r *Report, h textproto.MIMEHeader) error {
	typ, mta, ok := typed(h.Get("Reporting-Mta"))
	if !ok || typ != "dns" {
		return fmt.Errorf("%w: Reporting-MTA must be \"dns; host\"", ErrMalformed)
	}
	r.ReportingMTA = mta
	r.QueueID = field(h.Get("X-Nhsrelay-Queue-Id"))
	r.EnvelopeID = field(h.Get("Original-Envelope-Id"))
	if d := h.Get("Arrival-Date"); d != "" {
		t, err := mail.ParseDate(d)
		if err != nil {
			return fmt.Errorf("%w: Arrival-Date: %v", ErrMalformed, err)
		}
		r.ArrivalDate = t
	}
	return nil
}

func parseRecipient(h textproto.MIMEHeader) (Recipient, error) {
	var rc Recipient
	_, addr, ok := typed(h.Get("Final-Recipient"))
	if !ok {
		return rc, fmt.Errorf("%w: Final-Recipient must be \"type; address\"", ErrMalformed)
	}
	rc.FinalRecipient = addr
	rc.OriginalRecipient = field(h.Get("Original-Recipient"))
	rc.Action = Action(strings.ToLower(field(h.Get("Action"))))
	if !validAction(rc.Action) {
		return rc, fmt.Errorf("%w: Action %q", ErrMalformed, rc.Action)
	}
	rc.Status = field(h.Get("Status"))
	if !validStatus(rc.Status) {
		return rc, fmt.Errorf("%w: Status %q", ErrMalformed, rc.Status)
	}
	if v := h.Get("Remote-Mta"); v != "" {
		if _, rc.RemoteMTA, ok = typed(v); !ok {
			return rc, fmt.Errorf("%w: Remote-MTA must be \"type; name\"", ErrMalformed)
		}
	}
	if v := h.Get("Diagnostic-Code"); v != "" {
		if rc.DiagnosticType, rc.Diagnostic, ok = typed(v); !ok || rc.DiagnosticType == "" {
			return rc, fmt.Errorf("%w: Diagnostic-Code must be \"type; text\"", ErrMalformed)
		}
	}
	for _, d := range []struct {
		name string
		dst  *time.Time
	}{{"Last-Attempt-Date", &rc.LastAttemptDate}, {"Will-Retry-Until", &rc.WillRetryUntil},
		{"X-Nhsrelay-Held-Until", &rc.HeldUntil}} {
		if v := h.Get(d.name); v != "" {
			t, err := mail.ParseDate(v)
			if err != nil {
				return rc, fmt.Errorf("%w: %s: %v", ErrMalformed, d.name, err)
			}
			*d.dst = t
		}
	}
	return rc, nil
}
