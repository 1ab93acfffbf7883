package challengereply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"nhsrelay/directory"
	"nhsrelay/relay"
	"nhsrelay/smtpd"
)

const (
	challengeFrom = "verify@relay.nhs.example"
	owner         = "gp.b82001@nhs.example"
)

// fakeConfirmer records calls and answers err.
type fakeConfirmer struct {
	err error

	mu    sync.Mutex
	calls []confirmCall
}

type confirmCall struct {
	from, text  string
	hasDeadline bool
}

func (f *fakeConfirmer) ConfirmByReply(ctx context.Context, from, text string) error {
	_, dl := ctx.Deadline()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, confirmCall{from, text, dl})
	return f.err
}

func (f *fakeConfirmer) all() []confirmCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]confirmCall(nil), f.calls...)
}

func newHandler(t *testing.T, c Confirmer) *Handler {
	t.Helper()
	h, err := New(Config{Address: challengeFrom, Directory: c})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

func replyFrom(from, extraHeader, body string) string {
	return "From: Dr B <" + from + ">\r\nTo: <" + challengeFrom + ">\r\nSubject: Re: Verification code\r\n" +
		extraHeader + "\r\n" + body
}

// wantRefusal checks err is a *smtpd.HandlerError with code, subject and
// detail, whose text contains text.
func wantRefusal(t *testing.T, err error, code, subject, detail int, text string) {
	t.Helper()
	var he *smtpd.HandlerError
	if !errors.As(err, &he) {
		t.Fatalf("error = %v, want a *smtpd.HandlerError %d %d.%d.%d", err, code, code/100, subject, detail)
	}
	if he.Code != code || he.Subject != subject || he.Detail != detail || !strings.Contains(he.Text, text) {
		t.Fatalf("refusal = %d x.%d.%d %q, want %d x.%d.%d containing %q", he.Code, he.Subject, he.Detail, he.Text, code, subject, detail, text)
	}
}

func TestHandle(t *testing.T) {
	t.Parallel()
	typed := "Here it is: " + code + "\r\n\r\n> Verification code: " + code + "\r\n"
	for _, tc := range []struct {
		name     string
		from     string // envelope
		msg      string
		dirErr   error
		asked    bool // the directory is asked
		code     int  // 0: success
		enh      [2]int
		text     string
		internal bool // a plain error (smtpd's 451)
	}{
		{name: "confirmed", from: owner, msg: replyFrom(owner, "", typed), asked: true},
		{name: "From differs only in case", from: "GP.B82001@NHS.example", msg: replyFrom(owner, "", typed), asked: true},
		{name: "no challenge", from: owner, msg: replyFrom(owner, "", typed), asked: true,
			dirErr: fmt.Errorf("directory: confirm: %w", directory.ErrNoChallenge), code: 550, enh: [2]int{7, 1}, text: "no verification is pending for <" + owner + ">"},
		{name: "no code", from: owner, msg: replyFrom(owner, "", "thanks\r\n"), asked: true,
			dirErr: directory.ErrNoCode, code: 550, enh: [2]int{6, 0}, text: "no verification code found: type the code from the challenge into your reply"},
		{name: "no code, encrypted", from: owner, msg: replyFrom(owner, "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n", "MIAG\r\n"), asked: true,
			dirErr: directory.ErrNoCode, code: 550, enh: [2]int{6, 0}, text: "reply without encryption"},
		{name: "wrong code", from: owner, msg: replyFrom(owner, "", typed), asked: true,
			dirErr: fmt.Errorf("directory: 4 attempts left: %w", directory.ErrWrongCode), code: 550, enh: [2]int{7, 1}, text: "the code does not match; ask your administrator for a new challenge"},
		{name: "directory failure", from: owner, msg: replyFrom(owner, "", typed), asked: true,
			dirErr: errors.New("bolt: /var/lib/nhsrelay/directory.db: disk full"), internal: true},
		{name: "null sender", from: "", msg: replyFrom("mailer-daemon@trust.nhs.example", "", typed),
			code: 550, enh: [2]int{7, 1}, text: "null sender"},
		{name: "out of office", from: owner, msg: replyFrom(owner, "Auto-Submitted: auto-replied\r\n", "I am away. "+code+"\r\n"),
			code: 550, enh: [2]int{7, 1}, text: "automatic reply (Auto-Submitted: auto-replied)"},
		{name: "From is someone else", from: owner, msg: replyFrom("ceo@trust.nhs.example", "", typed),
			code: 550, enh: [2]int{7, 1}, text: "From: header must be the envelope sender <" + owner + "> alone"},
		{name: "From has two addresses", from: owner, msg: "From: <" + owner + ">, <x@y.example>\r\n\r\n" + typed,
			code: 550, enh: [2]int{7, 1}, text: "alone"},
		{name: "no From", from: owner, msg: "Subject: x\r\n\r\n" + typed, code: 550, enh: [2]int{7, 1}, text: "From: header"},
		{name: "unreadable MIME", from: owner, msg: replyFrom(owner, "Content-Type: multipart/mixed\r\n", typed),
			code: 550, enh: [2]int{6, 0}, text: "cannot be read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fc := &fakeConfirmer{err: tc.dirErr}
			h := newHandler(t, fc)
			env := relay.Envelope{From: tc.from, Recipients: []string{challengeFrom}, Inbound: true}
			r := strings.NewReader(tc.msg)
			text, err := h.Handle(t.Context(), env, r)
			if r.Len() != 0 {
				t.Errorf("%d bytes left unread: Handle must read to EOF", r.Len())
			}
			calls := fc.all()
			if asked := len(calls) > 0; asked != tc.asked {
				t.Errorf("directory asked = %v, want %v", asked, tc.asked)
			}
			if len(calls) > 0 {
				if calls[0].from != tc.from || !calls[0].hasDeadline {
					t.Errorf("ConfirmByReply(from %q, deadline %v), want from %q with a deadline", calls[0].from, calls[0].hasDeadline, tc.from)
				}
			}
			switch {
			case tc.internal:
				var he *smtpd.HandlerError
				if err == nil || errors.As(err, &he) || !errors.Is(err, tc.dirErr) {
					t.Errorf("error = %v, want a plain error wrapping the directory's", err)
				}
			case tc.code != 0:
				wantRefusal(t, err, tc.code, tc.enh[0], tc.enh[1], tc.text)
			case err != nil || text != "verification confirmed":
				t.Errorf("Handle = %q, %v; want verification confirmed", text, err)
			}
			if tc.name == "confirmed" && (len(calls) != 1 || !strings.Contains(calls[0].text, "Here it is: "+code)) {
				t.Errorf("directory given %+v, want the reply's text", calls)
			}
		})
	}
}

// errReader fails like smtpd's checks do, after some bytes.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

// TestHandleReadError: a failed read (smtpd refused the message) means
// nothing is confirmed, even with a good code before the failure.
func TestHandleReadError(t *testing.T) {
	t.Parallel()
	fc := &fakeConfirmer{}
	h := newHandler(t, fc)
	bad := errors.New("smtpd: bare CR or LF in message")
	_, err := h.Handle(t.Context(), relay.Envelope{From: owner},
		&errReader{r: strings.NewReader(replyFrom(owner, "", code+"\r\n")), err: bad})
	if !errors.Is(err, bad) {
		t.Errorf("Handle error = %v, want the read error", err)
	}
	if n := len(fc.all()); n != 0 {
		t.Errorf("directory asked %d times after a failed read", n)
	}
}

func TestAccepts(t *testing.T) {
	t.Parallel()
	h := newHandler(t, &fakeConfirmer{})
	for addr, want := range map[string]bool{
		challengeFrom: true, "VERIFY@Relay.NHS.Example": true, "<" + challengeFrom + ">": true,
		"verify@other.nhs.example": false, "postmaster@relay.nhs.example": false, "relay.nhs.example": false,
		"": false, "verify@relay.nhs.example.": false, "verify@@relay.nhs.example": false,
	} {
		if got := h.Accepts(addr); got != want {
			t.Errorf("Accepts(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Address: "relay.nhs.example", Timeout: -time.Second})
	for _, want := range []string{"Address", "Directory", "Timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(bad) error = %v, want it to name %s", err, want)
		}
	}
	if _, err := New(Config{Address: "<Verify@Relay.NHS.example>", Directory: &fakeConfirmer{}}); err != nil {
		t.Errorf("New: %v", err)
	}
}
