package peers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// Handler is the admin API for peers, mounted behind the admin token
// (cmd's admin listener sets the actor):
//
//	GET    /v1/directory/peers               list (Info, no tokens)
//	POST   /v1/directory/peers               {"name","url","token","ca"} add, after one successful fetch
//	GET    /v1/directory/peers/{name}        one peer
//	DELETE /v1/directory/peers/{name}        remove: its endpoints are retired, its CA no longer trusted
//	POST   /v1/directory/peers/{name}/sync   sync now
//
// Errors are {"error": "words"}: 400 for a bad request, 404 for an unknown
// peer, 409 for a name in use; a peer that cannot be read is a 400 on add
// (nothing stored) and a 502 on sync.
func (m *Manager) Handler() http.Handler {
	mux := http.NewServeMux()
	const base = "/v1/directory/peers"
	mux.HandleFunc("GET "+base, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, m.List())
	})
	mux.HandleFunc("POST "+base, func(w http.ResponseWriter, r *http.Request) {
		var p Peer
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			writeError(w, http.StatusBadRequest, "body: not a peer as JSON {name, url, token, ca}: "+err.Error())
			return
		}
		// A national directory takes a while: a client that stops waiting
		// does not cut the add short (Config.Timeout bounds it).
		in, err := m.Add(context.WithoutCancel(r.Context()), Peer{Name: p.Name, URL: p.URL, Token: p.Token, CA: p.CA})
		if err != nil {
			writeError(w, statusOf(err), err.Error())
			return
		}
		writeJSON(w, http.StatusCreated, in)
	})
	mux.HandleFunc("GET "+base+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		in, err := m.Show(r.PathValue("name"))
		if err != nil {
			writeError(w, statusOf(err), err.Error())
			return
		}
		writeJSON(w, http.StatusOK, in)
	})
	mux.HandleFunc("DELETE "+base+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Remove(r.Context(), r.PathValue("name")); err != nil {
			writeError(w, statusOf(err), err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+base+"/{name}/sync", func(w http.ResponseWriter, r *http.Request) {
		in, err := m.Sync(context.WithoutCancel(r.Context()), r.PathValue("name"))
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				writeError(w, http.StatusNotFound, err.Error())
				return
			}
			writeJSON(w, http.StatusBadGateway, map[string]any{"error": err.Error(), "peer": in})
			return
		}
		writeJSON(w, http.StatusOK, in)
	})
	mux.HandleFunc(base+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such peers API path: "+r.URL.Path)
	})
	return mux
}

func statusOf(err error) int {
	var in *InputError
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrExists):
		return http.StatusConflict
	case errors.As(err, &in):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // a write error means the client went away
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
