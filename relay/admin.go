package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"nhsrelay/audit"
	"nhsrelay/relay/queue"
)

// List returns every queued message, oldest first.
func (r *Relay) List(ctx context.Context) ([]queue.Message, error) {
	msgs, err := r.store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("relay: list: %w", err)
	}
	return msgs, nil
}

// Get returns one message's record; the error wraps queue.ErrNotFound if
// there is none.
func (r *Relay) Get(ctx context.Context, id string) (queue.Message, error) {
	m, err := r.store.Get(ctx, id)
	if err != nil {
		return queue.Message{}, fmt.Errorf("relay: get %s: %w", id, err)
	}
	return m, nil
}

// Retry makes every queued or held recipient of id due now (a held one is
// released: the Sealer is asked again) and wakes the delivery loop.
func (r *Relay) Retry(ctx context.Context, id string) error {
	now := r.cfg.Now()
	var m queue.Message
	err := r.store.Update(ctx, id, func(cur *queue.Message) error {
		for i := range cur.Recipients {
			rc := &cur.Recipients[i]
			if rc.State == queue.Queued || rc.State == queue.Held {
				rc.State, rc.NextAttempt = queue.Queued, now
			}
		}
		m = *cur
		return nil
	})
	if err != nil {
		return fmt.Errorf("relay: retry %s: %w", id, err)
	}
	r.schedule(m)
	r.audit(audit.Event{Actor: audit.ActorFrom(ctx), Action: "queue.retry", QueueID: id, Outcome: "ok"})
	r.log.Info("retry requested", "msgid", id, "actor", audit.ActorFrom(ctx))
	r.Kick()
	return nil
}

// Delete removes a message without notifying its sender (as postsuper -d).
// The error wraps queue.ErrNotFound if there is no such message.
func (r *Relay) Delete(ctx context.Context, id string) error {
	if _, err := r.store.Get(ctx, id); err != nil {
		return fmt.Errorf("relay: delete %s: %w", id, err)
	}
	if err := r.remove(ctx, id); err != nil {
		return fmt.Errorf("relay: delete: %w", err)
	}
	r.audit(audit.Event{Actor: audit.ActorFrom(ctx), Action: "queue.delete", QueueID: id, Outcome: "ok"})
	r.log.Warn("message deleted from queue", "msgid", id, "actor", audit.ActorFrom(ctx))
	return nil
}

// AdminHandler serves the queue API as JSON: GET /v1/queue,
// GET /v1/queue/{id}, POST /v1/queue/{id}/retry, DELETE /v1/queue/{id}.
// Errors are {"error": "..."}. Authentication is the caller's (cmd wraps
// it with the admin token check and puts the actor in the context).
func (r *Relay) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/queue", func(w http.ResponseWriter, req *http.Request) {
		msgs, err := r.List(req.Context())
		if err != nil {
			r.writeError(w, req, err)
			return
		}
		if msgs == nil {
			msgs = []queue.Message{}
		}
		writeJSON(w, http.StatusOK, msgs)
	})
	mux.HandleFunc("GET /v1/queue/{id}", func(w http.ResponseWriter, req *http.Request) {
		m, err := r.Get(req.Context(), req.PathValue("id"))
		if err != nil {
			r.writeError(w, req, err)
			return
		}
		writeJSON(w, http.StatusOK, m)
	})
	mux.HandleFunc("POST /v1/queue/{id}/retry", func(w http.ResponseWriter, req *http.Request) {
		if err := r.Retry(req.Context(), req.PathValue("id")); err != nil {
			r.writeError(w, req, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "scheduled"})
	})
	mux.HandleFunc("DELETE /v1/queue/{id}", func(w http.ResponseWriter, req *http.Request) {
		if err := r.Delete(req.Context(), req.PathValue("id")); err != nil {
			r.writeError(w, req, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "deleted"})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// writeError answers 404 for a missing message and 500 otherwise, with
// words that hold no internal detail.
func (r *Relay) writeError(w http.ResponseWriter, req *http.Request, err error) {
	if errors.Is(err, queue.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no queued message has this ID"})
		return
	}
	r.log.Error("admin API", "method", req.Method, "path", req.URL.Path, "err", err)
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "queue store error; see the server log"})
}
