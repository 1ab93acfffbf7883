package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"nhsrelay/audit"
	"nhsrelay/directory"
	"nhsrelay/directory/ods"
)

// Body limits. An endpoint with a few S/MIME certificates is a few KiB; the
// national epraccur.csv is about 3 MiB.
const (
	maxJSONBody = 1 << 20
	maxCSVBody  = 64 << 20
)

// server holds what the handlers need; it has no state of its own.
type server struct {
	d   *directory.Directory
	log *slog.Logger
	mux *http.ServeMux

	maxJSON, maxCSV int64 // body limits
}

// New returns the handler for the admin API (/v1/directory/...) and the FHIR
// read API (/fhir/...). It does not authenticate: mount it behind the admin
// listener's bearer-token check, which sets the actor with audit.WithActor.
func New(d *directory.Directory, logger *slog.Logger) http.Handler {
	return newServer(d, logger, maxJSONBody, maxCSVBody).mux
}

func newServer(d *directory.Directory, logger *slog.Logger, maxJSON, maxCSV int64) *server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	s := &server{d: d, log: logger, mux: mux, maxJSON: maxJSON, maxCSV: maxCSV}

	const v1 = "/v1/directory"
	mux.HandleFunc("GET "+v1+"/organisations", s.admin(s.listOrganisations))
	mux.HandleFunc("POST "+v1+"/organisations", s.admin(s.addOrganisation))
	mux.HandleFunc("GET "+v1+"/organisations/{ods}", s.admin(s.getOrganisation))
	mux.HandleFunc("PUT "+v1+"/organisations/{ods}", s.admin(s.putOrganisation))
	mux.HandleFunc("GET "+v1+"/endpoints", s.admin(s.listEndpoints))
	mux.HandleFunc("POST "+v1+"/endpoints", s.admin(s.addEndpoint))
	mux.HandleFunc("GET "+v1+"/endpoints/{id}", s.admin(s.getEndpoint))
	mux.HandleFunc("PUT "+v1+"/endpoints/{id}", s.admin(s.putEndpoint))
	mux.HandleFunc("POST "+v1+"/endpoints/{id}/{action}", s.admin(s.endpointAction))
	mux.HandleFunc("PUT "+v1+"/endpoints/{id}/certificates", s.admin(s.putCertificates))
	mux.HandleFunc("POST "+v1+"/import-ods", s.admin(s.importODS))
	mux.HandleFunc("POST "+v1+"/import-ods-successors", s.admin(s.importSuccessors))
	mux.HandleFunc("GET "+v1+"/check", s.admin(s.check))
	mux.HandleFunc("GET "+v1+"/export", s.admin(s.export))
	mux.HandleFunc(v1+"/", s.admin(s.adminNotFound))
	s.mountAccounts() // accounts.go: /v1/accounts...

	mux.HandleFunc("GET /fhir/Endpoint", s.fhir(s.fhirSearchEndpoints))
	mux.HandleFunc("GET /fhir/Endpoint/{id}", s.fhir(s.fhirReadEndpoint))
	mux.HandleFunc("GET /fhir/Organization", s.fhir(s.fhirSearchOrganisations))
	mux.HandleFunc("GET /fhir/Organization/{ods}", s.fhir(s.fhirReadOrganisation))
	mux.HandleFunc("/fhir/", s.fhir(s.fhirNotFound))
	return s
}

// allowed returns the methods that some other route serves for r's path,
// so that a catch-all can answer 405 with Allow rather than 404.
func (s *server) allowed(r *http.Request) []string {
	_, catchAll := s.mux.Handler(r)
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, p := s.mux.Handler(r2); p != catchAll {
			out = append(out, m)
		}
	}
	return out
}

// apiError is an error with the HTTP status and the words to send. Fields
// names bad JSON fields or query parameters.
type apiError struct {
	status     int
	msg        string
	fields     map[string]string
	report     *ods.Report
	successors *ods.SuccessorReport
	cause      error // for the log only, never sent
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// fieldError is a 400 naming one bad field.
func fieldError(field, problem string) *apiError {
	return &apiError{status: http.StatusBadRequest, msg: field + ": " + problem,
		fields: map[string]string{field: problem}}
}

// errorBody is what every admin error looks like on the wire.
type errorBody struct {
	Error  string            `json:"error"`
	Fields map[string]string `json:"fields,omitempty"`
	Report *ods.Report       `json:"report,omitempty"`
	// Successors is the report of a refused strict successor import.
	Successors *ods.SuccessorReport `json:"successors,omitempty"`
}

// toAPIError maps an error from the directory (or from decoding) to what the
// client sees. notFound is the sentence for ErrNotFound ("no endpoint ...").
// Unknown errors become 500 with no detail; the caller logs them.
func toAPIError(err error, notFound string) *apiError {
	var (
		ae *apiError
		ve *directory.ValidationError
		se *ods.StrictError
		mb *http.MaxBytesError
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &ve):
		return &apiError{status: http.StatusBadRequest, msg: strings.TrimPrefix(ve.Error(), "directory: "), fields: ve.Fields}
	case errors.As(err, &mb):
		return errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", mb.Limit)
	case errors.As(err, &se):
		return errorf(http.StatusUnprocessableEntity, "%s", strings.TrimPrefix(se.Error(), "ods: "))
	case errors.Is(err, directory.ErrNotFound):
		if notFound == "" {
			notFound = "not found"
		}
		return errorf(http.StatusNotFound, "%s", notFound)
	case errors.Is(err, directory.ErrWrongCode):
		return fieldError("code", "does not match the code sent; check it and try again, or send a new challenge")
	case errors.Is(err, directory.ErrNoChallenge):
		return errorf(http.StatusConflict, "no outstanding challenge for this endpoint (none sent, expired, or too many wrong codes): send a new one")
	case errors.Is(err, directory.ErrConflict):
		return errorf(http.StatusConflict, "%s", cleanDirectoryError(err))
	case errors.Is(err, directory.ErrAuditUnavailable):
		return errorf(http.StatusServiceUnavailable, "the audit log cannot be written now, so nothing was changed; try again when it has recovered (see nhsrelay_audit_up)")
	case errors.Is(err, directory.ErrNoMailer):
		return errorf(http.StatusServiceUnavailable, "this relay has no mailer configured for verification challenges; attest instead")
	}
	ae = errorf(http.StatusInternalServerError, "internal error; the server log has the details")
	ae.cause = err
	return ae
}

// cleanDirectoryError drops the package prefixes from a directory error, so
// "directory: add endpoint: address x is used by ep-1: directory: conflict"
// reads "add endpoint: address x is used by ep-1".
func cleanDirectoryError(err error) string {
	s := strings.TrimPrefix(err.Error(), "directory: ")
	return strings.TrimSuffix(s, ": directory: conflict")
}

// admin adapts a handler that returns an error into an http.HandlerFunc
// that writes JSON errors.
func (s *server) admin(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		ae := toAPIError(err, "")
		if ae.status >= 500 {
			if ae.cause != nil {
				err = ae.cause
			}
			s.log.Error("directory api", "method", r.Method, "path", r.URL.Path,
				"actor", audit.ActorFrom(r.Context()), "err", err)
		}
		body := errorBody{Error: ae.msg, Fields: ae.fields, Report: ae.report, Successors: ae.successors}
		writeJSON(w, ae.status, body)
	}
}

func (s *server) adminNotFound(w http.ResponseWriter, r *http.Request) error {
	if allow := s.allowed(r); len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return errorf(http.StatusMethodNotAllowed, "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", "))
	}
	return errorf(http.StatusNotFound, "no such admin API resource: %s", r.URL.Path)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // the status is sent; a write error means the client went away
}

// decodeJSON reads exactly one JSON object of at most maxJSONBody bytes into
// v, refusing unknown fields and trailing data.
func (s *server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return errorf(http.StatusUnsupportedMediaType, "request body must be application/json, not %q", ct)
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.maxJSON))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return err
		}
		return errorf(http.StatusBadRequest, "request body must hold one JSON object and nothing after it")
	}
	return decodeFields(raw, v)
}

// decodeFields decodes the JSON object data into v (a pointer to a
// struct), refusing unknown fields. encoding/json stops at the first
// field of the wrong type; so each member is first decoded alone, and
// every unknown or wrongly typed one is named in one 400.
func decodeFields(data []byte, v any) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return jsonError(err)
	}
	if obj == nil { // null
		return errorf(http.StatusBadRequest, "request body must be a JSON object")
	}
	t := reflect.TypeOf(v).Elem()
	problems := map[string]string{}
	for name, val := range obj {
		one, err := json.Marshal(map[string]json.RawMessage{name: val})
		if err == nil {
			err = decodeStrict(one, reflect.New(t).Interface())
		}
		if err == nil {
			continue
		}
		var ae *apiError
		if errors.As(jsonError(err), &ae) && len(ae.fields) > 0 {
			maps.Copy(problems, ae.fields)
		} else {
			problems[name] = err.Error()
		}
	}
	if len(problems) > 0 {
		return fieldsError(problems)
	}
	if err := decodeStrict(data, v); err != nil {
		return jsonError(err)
	}
	return nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// fieldsError is a 400 naming every bad field.
func fieldsError(fields map[string]string) *apiError {
	names := slices.Sorted(maps.Keys(fields))
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ": " + fields[n]
	}
	return &apiError{status: http.StatusBadRequest, msg: strings.Join(parts, "; "), fields: fields}
}

// jsonError turns a decoding error into words and, where possible, a field.
func jsonError(err error) error {
	var (
		se *json.SyntaxError
		te *json.UnmarshalTypeError
		mb *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mb):
		return err
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, "request body is empty; a JSON object is needed")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "request body is cut short: not complete JSON")
	case errors.As(err, &se):
		return errorf(http.StatusBadRequest, "request body is not valid JSON (at byte %d)", se.Offset)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return errorf(http.StatusBadRequest, "request body must be a JSON object")
		}
		return fieldError(field, "must be "+jsonKind(te.Type.Kind().String()))
	}
	// encoding/json gives no type for an unknown field, only this text.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fieldError(strings.Trim(name, `"`), "unknown field")
	}
	return errorf(http.StatusBadRequest, "request body: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "slice", "array":
		return "a list"
	case "struct", "map":
		return "an object"
	case "bool":
		return "true or false"
	}
	return "a number"
}

// checkQuery refuses query parameters other than those allowed, and any
// given twice, so that a typo ("?stauts=") is not silently ignored.
func checkQuery(r *http.Request, allowed ...string) error {
	for k, vs := range r.URL.Query() {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok && len(allowed) == 0 {
			return fieldError(k, "unknown query parameter (this resource takes none)")
		}
		if !ok {
			return fieldError(k, "unknown query parameter (known: "+strings.Join(allowed, ", ")+")")
		}
		if len(vs) > 1 {
			return fieldError(k, "given more than once")
		}
	}
	return nil
}
