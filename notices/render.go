package notices

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"io"
	"os"
	"path/filepath"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"

	"nhsrelay/notices/ical"
)

//go:embed templates
var defaultTemplates embed.FS

// templates are one organisation's email templates.
type templates struct {
	html    *htmltemplate.Template
	text    *texttemplate.Template
	subject *texttemplate.Template
}

// templateSet holds the default templates and each organisation's
// overrides (OrgSettings.TemplateDir: email.html, email.txt, subject.txt,
// each optional).
type templateSet struct {
	def   templates
	byOrg map[string]templates
}

func loadTemplates(orgs map[string]OrgSettings) (*templateSet, error) {
	read := func(dir, name string) (string, error) {
		if dir != "" {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err == nil {
				return string(b), nil
			}
			if !os.IsNotExist(err) {
				return "", err
			}
		}
		b, err := defaultTemplates.ReadFile("templates/" + name)
		return string(b), err
	}
	parse := func(dir string) (templates, error) {
		var t templates
		h, err := read(dir, "email.html")
		if err != nil {
			return t, err
		}
		if t.html, err = htmltemplate.New("email.html").Option("missingkey=error").Parse(h); err != nil {
			return t, err
		}
		x, err := read(dir, "email.txt")
		if err != nil {
			return t, err
		}
		if t.text, err = texttemplate.New("email.txt").Option("missingkey=error").Parse(x); err != nil {
			return t, err
		}
		sub, err := read(dir, "subject.txt")
		if err != nil {
			return t, err
		}
		t.subject, err = texttemplate.New("subject.txt").Option("missingkey=error").Parse(sub)
		return t, err
	}
	def, err := parse("")
	if err != nil {
		return nil, fmt.Errorf("notices: default templates: %w", err)
	}
	ts := &templateSet{def: def, byOrg: map[string]templates{}}
	for ods, o := range orgs {
		if o.TemplateDir == "" {
			continue
		}
		t, err := parse(o.TemplateDir)
		if err != nil {
			return nil, fmt.Errorf("notices: templates of %s in %s: %w", ods, o.TemplateDir, err)
		}
		ts.byOrg[ods] = t
	}
	return ts, nil
}

func (ts *templateSet) forOrg(ods string) templates {
	if t, ok := ts.byOrg[ods]; ok {
		return t
	}
	return ts.def
}

// view is what a template sees: plain words, nothing clinical beyond
// what the appointment needs, never the NHS number.
type view struct {
	Subject, Heading, Intro, OrgName, PatientName string
	When, Location, Clinic, Department, VideoLink string
	Instructions                                  []string
	ContactPhone, ContactPhoneLink                string
	Calendar                                      bool
}

func newView(n Notice, orgName string) view {
	a := n.Appointment
	v := view{OrgName: orgName, PatientName: a.PatientName, When: When(a.Local()),
		Location: a.Location, Clinic: a.Clinic, Department: a.Department, VideoLink: a.VideoLink,
		ContactPhone: a.ContactPhone, Calendar: true}
	v.ContactPhoneLink = strings.Map(func(r rune) rune {
		if r == '+' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, a.ContactPhone)
	for _, p := range strings.Split(strings.ReplaceAll(a.Instructions, "\r\n", "\n"), "\n") {
		if p = strings.TrimSpace(p); p != "" {
			v.Instructions = append(v.Instructions, p)
		}
	}
	switch n.Kind {
	case KindChanged:
		v.Heading = "Your appointment has changed"
		v.Intro = "Your appointment with " + orgName + " has changed. The new details are below."
	case KindCancelled:
		v.Heading = "Your appointment has been cancelled"
		v.Intro = "Your appointment with " + orgName + " on " + v.When + " has been cancelled. You do not need to come."
	default:
		v.Heading = "Your appointment"
		v.Intro = "You have an appointment with " + orgName + "."
	}
	return v
}

// When says an appointment's time as a person reads it, in its own time
// zone: "Sunday 28 March 2027, 9:30am to 10:00am".
func When(start, end time.Time) string {
	end = end.In(start.Location())
	clock := func(t time.Time) string { return strings.ToLower(t.Format("3:04PM")) }
	s := start.Format("Monday 2 January 2006") + ", " + clock(start) + " to " + clock(end)
	if y1, m1, d1 := start.Date(); true {
		if y2, m2, d2 := end.Date(); y1 != y2 || m1 != m2 || d1 != d2 {
			s = start.Format("Monday 2 January 2006") + ", " + clock(start) + " to " + end.Format("Monday 2 January 2006") + ", " + clock(end)
		}
	}
	if start.Location().String() != "Europe/London" {
		s += " (" + start.Location().String() + " time)"
	}
	return s
}

// render writes the email of notice n's current version: text, HTML and
// the calendar part as multipart/alternative (RFC 2046 §5.1.4; RFC 6047
// §2.4: the iCalendar part inline, its method parameter matching METHOD).
func (s *Service) render(ctx context.Context, w io.Writer, n Notice) error {
	orgName := n.Organisation
	if o, err := s.cfg.Organisations.Organisation(ctx, n.Organisation); err == nil && o.Name != "" {
		orgName = o.Name
	}
	set := s.cfg.Orgs[n.Organisation]
	from := set.From
	if from == "" {
		from = s.cfg.DefaultFrom
	}
	return renderEmail(w, s.templates.forOrg(n.Organisation), n, RenderInfo{
		OrgName: orgName, From: from, ReplyTo: set.ReplyTo, Hostname: s.cfg.Hostname, Now: s.now()})
}

// RenderInfo is what a rendered email needs besides the notice.
type RenderInfo struct {
	OrgName, From, ReplyTo, Hostname string
	Now                              time.Time
}

// renderEmail writes notice n's email with templates t.
func renderEmail(w io.Writer, t templates, n Notice, info RenderInfo) error {
	v := newView(n, info.OrgName)
	var sub bytes.Buffer
	if err := t.subject.Execute(&sub, v); err != nil {
		return fmt.Errorf("subject template: %w", err)
	}
	v.Subject = strings.Join(strings.Fields(sub.String()), " ")
	var html, txt, cal bytes.Buffer
	if err := t.html.Execute(&html, v); err != nil {
		return fmt.Errorf("html template: %w", err)
	}
	if err := t.text.Execute(&txt, v); err != nil {
		return fmt.Errorf("text template: %w", err)
	}
	method := ical.Request
	if n.Kind == KindCancelled {
		method = ical.Cancel
	}
	start, end := n.Appointment.Local()
	ev := ical.Event{Method: method, UID: n.ID + "@" + info.Hostname, Sequence: n.Sequence, Stamp: info.Now,
		Start: start, End: end, Summary: "Appointment: " + info.OrgName,
		Location: n.Appointment.Location, Description: v.Intro, URL: n.Appointment.VideoLink,
		Organizer: ical.Person{Name: info.OrgName, Email: info.From},
		Attendee:  ical.Person{Name: n.Appointment.PatientName, Email: n.Appointment.Email}}
	if n.Appointment.Clinic != "" {
		ev.Summary = n.Appointment.Clinic + " appointment: " + info.OrgName
	}
	if err := ical.Write(&cal, ev); err != nil {
		return err
	}

	var h mail.Header
	h.SetDate(info.Now)
	h.SetAddressList("From", []*mail.Address{{Name: info.OrgName, Address: info.From}})
	h.SetAddressList("To", []*mail.Address{{Name: n.Appointment.PatientName, Address: n.Appointment.Email}})
	if info.ReplyTo != "" {
		h.SetAddressList("Reply-To", []*mail.Address{{Address: info.ReplyTo}})
	}
	h.SetSubject(v.Subject)
	h.SetMessageID(fmt.Sprintf("%s.%d.%s@%s", n.ID, n.Sequence, randomText(5), info.Hostname))
	h.Set("Auto-Submitted", "auto-generated") // RFC 3834 §5: no auto-replies, please
	h.Set("MIME-Version", "1.0")
	h.SetContentType("multipart/alternative", nil)
	mw, err := message.CreateWriter(w, h.Header)
	if err != nil {
		return err
	}
	for _, p := range []struct {
		typ    string
		params map[string]string
		body   []byte
	}{
		{"text/plain", map[string]string{"charset": "utf-8"}, crlf(txt.Bytes())},
		{"text/html", map[string]string{"charset": "utf-8"}, crlf(html.Bytes())},
		// Last: the richest alternative (RFC 2046 §5.1.4).
		{"text/calendar", map[string]string{"charset": "utf-8", "method": string(method)}, cal.Bytes()},
	} {
		var ph message.Header
		ph.SetContentType(p.typ, p.params)
		ph.Set("Content-Transfer-Encoding", "quoted-printable")
		pw, err := mw.CreatePart(ph)
		if err != nil {
			return err
		}
		if _, err := pw.Write(p.body); err != nil {
			return err
		}
		if err := pw.Close(); err != nil {
			return err
		}
	}
	return mw.Close()
}

// crlf makes every line end in CRLF.
func crlf(b []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}
