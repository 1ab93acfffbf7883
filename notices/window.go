package notices

import (
	"fmt"
	"strings"
	"time"
)

// london is where sending windows and the letter cut-off are read.
var london = mustLoad("Europe/London")

func mustLoad(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic("notices: tzdata is embedded, yet " + name + " did not load: " + err.Error())
	}
	return l
}

// Window is the time of day, in Europe/London, when patient emails may
// go out: From ≤ t < To; From > To wraps midnight. The zero Window is
// always open.
type Window struct {
	From, To time.Duration // since midnight
}

// ParseWindow reads "08:00-20:00".
func ParseWindow(s string) (Window, error) {
	if s == "" {
		return Window{}, nil
	}
	a, b, ok := strings.Cut(s, "-")
	from, err1 := parseClock(a)
	to, err2 := parseClock(b)
	if !ok || err1 != nil || err2 != nil || from == to {
		return Window{}, fmt.Errorf("sending window %q: want HH:MM-HH:MM, two different times", s)
	}
	return Window{From: from, To: to}, nil
}

func parseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

func (w Window) String() string {
	if w == (Window{}) {
		return "any time"
	}
	f := func(d time.Duration) string { return fmt.Sprintf("%02d:%02d", int(d.Hours()), int(d.Minutes())%60) }
	return f(w.From) + "-" + f(w.To)
}

// sinceMidnight is t's time of day in London.
func sinceMidnight(t time.Time) time.Duration {
	l := t.In(london)
	return time.Duration(l.Hour())*time.Hour + time.Duration(l.Minute())*time.Minute + time.Duration(l.Second())*time.Second
}

// Open reports whether t is inside the window.
func (w Window) Open(t time.Time) bool {
	if w == (Window{}) {
		return true
	}
	d := sinceMidnight(t)
	if w.From < w.To {
		return d >= w.From && d < w.To
	}
	return d >= w.From || d < w.To
}

// Next is the first time at or after t when the window is open.
func (w Window) Next(t time.Time) time.Time {
	if w.Open(t) {
		return t
	}
	l := t.In(london)
	for day := 0; day < 3; day++ {
		y, m, d := l.AddDate(0, 0, day).Date()
		open := time.Date(y, m, d, int(w.From.Hours()), int(w.From.Minutes())%60, 0, 0, london)
		if !open.Before(t) {
			return open
		}
	}
	return t.Add(time.Hour) // not reached for a valid window
}
