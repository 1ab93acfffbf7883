package relay

import (
	"bytes"
	"io"
	"slices"
	"strconv"
	"strings"

	"nhsrelay/audit"
	"nhsrelay/relay/queue"
)

// maxTapHeader bounds the header block a headerTap keeps.
const maxTapHeader = 32 << 10

// headerTap passes a message through and keeps its header block (up to
// the first empty line, at most maxTapHeader bytes), so that the relay can
// name the message (Message-ID) in the audit log without a second read.
type headerTap struct {
	r    io.Reader
	buf  []byte
	done bool
}

func (t *headerTap) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if !t.done && n > 0 {
		from := max(len(t.buf)-3, 0)
		t.buf = append(t.buf, p[:min(n, maxTapHeader-len(t.buf))]...)
		if i := bytes.Index(t.buf[from:], []byte("\r\n\r\n")); i >= 0 {
			t.buf, t.done = t.buf[:from+i+2], true
		} else if len(t.buf) >= maxTapHeader {
			t.done = true
		}
	}
	return n, err
}

func (t *headerTap) header() []byte { return t.buf }

// headerValue returns the unfolded value of the first field called name
// in a header block (RFC 5322 §2.2.3), or "".
func headerValue(hdr []byte, name string) string {
	var val []string
	in := false
	for line := range strings.Lines(string(hdr)) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if in {
				val = append(val, strings.TrimSpace(line))
			}
			continue
		}
		if in {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			in, val = true, []string{strings.TrimSpace(v)}
		}
	}
	return strings.Join(val, " ")
}

// maxRcptField bounds the recipient list an accepted event carries; the
// count of those left out follows it.
const maxRcptField = 4 << 10

// acceptedFields are the facts of the accepted audit event that the
// message timeline reads: who sent it from where, how big, to whom, which
// Message-ID, and whether receipts were asked for. Never content.
func acceptedFields(m queue.Message, hdr []byte) audit.Fields {
	f := audit.Fields{"account": m.Account, "client_ip": m.ClientIP, "size": strconv.FormatInt(m.Size, 10),
		"from": m.From, "message_id": oneLine(headerValue(hdr, "Message-ID")), "envid": m.EnvID, "ret": m.Ret}
	if m.Inbound {
		f["inbound"] = "yes"
	}
	if m.System {
		f["system"] = "yes"
	}
	if headerValue(hdr, "Disposition-Notification-To") != "" { // RFC 8098 §2.1
		f["mdn"] = "requested"
	}
	var rcpts, success []string
	size, more := 0, 0
	for _, rc := range m.Recipients {
		if size+len(rc.Address) > maxRcptField {
			more++
			continue
		}
		size += len(rc.Address) + 1
		rcpts = append(rcpts, rc.Address)
		if slices.Contains(rc.Notify, notifySuccess) {
			success = append(success, rc.Address)
		}
	}
	f["rcpts"] = strings.Join(rcpts, ",")
	if more > 0 {
		f["rcpts_more"] = strconv.Itoa(more)
	}
	if len(success) > 0 {
		f["receipts"] = strings.Join(success, ",")
	}
	return f
}
