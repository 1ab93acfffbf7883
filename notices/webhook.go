package notices

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Webhook requests carry these headers. The signature is
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)): a
// receiver recomputes it and refuses an old timestamp (replay).
const (
	HeaderSignature      = "X-NHSRelay-Signature"
	HeaderTimestamp      = "X-NHSRelay-Timestamp"
	HeaderIdempotencyKey = "Idempotency-Key"
)

// WebhookBody is what a webhook receives for one status change. Events
// may arrive out of order (each is retried on its own): Sequence orders
// them per notice, and Key is the same on every retry of one event.
type WebhookBody struct {
	Key          string    `json:"idempotency_key"`
	Sequence     int       `json:"sequence"`
	Reference    string    `json:"reference"`
	Organisation string    `json:"organisation"`
	Status       Status    `json:"status"`
	Version      int       `json:"version"`
	Time         time.Time `json:"time"`
	Detail       string    `json:"detail,omitempty"`
}

// Sign is the signature of body sent at ts with secret.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%d.", ts)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// retryDelay is the wait after attempt n (1-based): 30 s doubling to at
// most an hour; events are retried for WebhookRetryFor.
func retryDelay(n int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// sendWebhooks delivers every due event.
func (s *Service) sendWebhooks(ctx context.Context) {
	now := s.now()
	s.mu.Lock()
	var due []string
	for ref, t := range s.outbox {
		if !t.After(now) {
			due = append(due, ref)
		}
	}
	s.mu.Unlock()
	for _, ref := range due {
		s.sendNoticeWebhooks(ctx, ref, now)
	}
}

func (s *Service) sendNoticeWebhooks(ctx context.Context, ref string, now time.Time) {
	n, err := s.store.Get(ctx, ref)
	if err != nil {
		// Left in the outbox, tried again next round; said, not silent.
		s.log.Error("webhook events not sent: notice unreadable", "reference", ref, "err", err)
		return
	}
	s.credMu.RLock()
	cred := s.creds[n.Credential]
	s.credMu.RUnlock()
	results := map[string]error{}
	if cred.Webhook != "" {
		for _, ev := range n.Outbox {
			if ev.NextAttempt.After(now) {
				continue
			}
			results[ev.Key] = s.post(ctx, cred, n, ev)
		}
	}
	s.update(ctx, ref, func(n *Notice) error {
		keep := n.Outbox[:0]
		for _, ev := range n.Outbox {
			err, tried := results[ev.Key]
			switch {
			case cred.Webhook == "": // nobody to tell: events are dropped, the timeline has them
				continue
			case !tried:
				keep = append(keep, ev)
			case err == nil:
				continue
			case now.Sub(ev.Time) >= s.cfg.WebhookRetryFor:
				s.log.Error("webhook event given up", "notice", n.ID, "key", ev.Key, "credential", cred.ID, "err", err)
				s.auditAdmin(ctx, "notice.webhook_failed", "credential "+cred.ID+", event "+ev.Key+": "+err.Error())
			default:
				ev.Attempts++
				ev.NextAttempt = now.Add(retryDelay(ev.Attempts))
				keep = append(keep, ev)
			}
		}
		n.Outbox = keep
		return nil
	})
}

// post sends one event; a 2xx answer is success.
func (s *Service) post(ctx context.Context, cred Credential, n Notice, ev WebhookEvent) error {
	body, _ := json.Marshal(WebhookBody{Key: ev.Key, Sequence: ev.Sequence, Reference: n.Reference,
		Organisation: n.Organisation, Status: ev.Status, Version: n.Sequence, Time: ev.Time, Detail: ev.Detail})
	ts := s.now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cred.Webhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(cred.WebhookSecret, ts, body))
	req.Header.Set(HeaderIdempotencyKey, ev.Key)
	resp, err := s.cfg.WebhookClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
