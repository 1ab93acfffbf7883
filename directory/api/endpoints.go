package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"nhsrelay/directory"
)

// endpointInput is what a client may set on an endpoint. The lifecycle
// fields are changed only through the action URLs, so they are refused here
// with a pointer to the right one rather than as unknown fields.
type endpointInput struct {
	ID           string            `json:"id,omitempty"`
	Address      string            `json:"address"`
	ODS          string            `json:"ods"`
	Purpose      string            `json:"purpose,omitempty"`
	NextHop      directory.NextHop `json:"next_hop"`
	Certificates [][]byte          `json:"certificates,omitempty"`
	TLSOnly      bool              `json:"tls_only,omitempty"`
	// TLSOnlyEvidence is required with TLSOnly: why the exception is allowed.
	TLSOnlyEvidence string   `json:"tls_only_evidence,omitempty"`
	FaxNumbers      []string `json:"fax_numbers,omitempty"`
	Contacts        []string `json:"contacts,omitempty"`

	Status       json.RawMessage `json:"status,omitempty"`
	StatusReason json.RawMessage `json:"status_reason,omitempty"`
	Redirect     json.RawMessage `json:"redirect,omitempty"`
	Verification json.RawMessage `json:"verification,omitempty"`
}

// readOnly refuses the lifecycle fields, naming the action that sets each.
func (in endpointInput) readOnly() error {
	ro := map[string]string{}
	if in.Status != nil || in.StatusReason != nil {
		ro["status"] = "read-only: POST .../endpoints/{id}/suspend, retire, challenge, verify or attest changes it"
	}
	if in.Redirect != nil {
		ro["redirect"] = "read-only: POST .../endpoints/{id}/redirect sets it"
	}
	if in.Verification != nil {
		ro["verification"] = "read-only: POST .../endpoints/{id}/challenge, verify or attest sets it"
	}
	if len(ro) == 0 {
		return nil
	}
	return &apiError{status: http.StatusBadRequest, msg: "read-only fields given", fields: ro}
}

func (in endpointInput) apply(e *directory.Endpoint) {
	e.Address, e.ODS, e.Purpose, e.NextHop = strings.TrimSpace(in.Address), strings.ToUpper(strings.TrimSpace(in.ODS)), in.Purpose, in.NextHop
	e.Certificates, e.TLSOnly, e.TLSOnlyEvidence = in.Certificates, in.TLSOnly, in.TLSOnlyEvidence
	e.FaxNumbers, e.Contacts = in.FaxNumbers, in.Contacts
}

type endpointList struct {
	Endpoints []directory.Endpoint `json:"endpoints"`
}

// parseFilter reads the list filters; status must be one the directory knows.
func parseFilter(r *http.Request) (directory.Filter, error) {
	if err := checkQuery(r, "ods", "address", "status", "name"); err != nil {
		return directory.Filter{}, err
	}
	q := r.URL.Query()
	f := directory.Filter{ODS: strings.ToUpper(q.Get("ods")), Address: q.Get("address"),
		Status: directory.EndpointStatus(q.Get("status")), Name: q.Get("name")}
	known := []directory.EndpointStatus{directory.StatusPending, directory.StatusVerified,
		directory.StatusSuspended, directory.StatusRetired}
	if f.Status != "" && !slices.Contains(known, f.Status) {
		return f, fieldError("status", "must be pending, verified, suspended or retired")
	}
	return f, nil
}

func (s *server) listEndpoints(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilter(r)
	if err != nil {
		return err
	}
	eps := s.d.Endpoints(r.Context(), f)
	if eps == nil {
		eps = []directory.Endpoint{}
	}
	writeJSON(w, http.StatusOK, endpointList{eps})
	return nil
}

func (s *server) getEndpoint(w http.ResponseWriter, r *http.Request) error {
	return s.writeEndpoint(w, r, http.StatusOK, r.PathValue("id"))
}

// writeEndpoint answers with the endpoint as stored.
func (s *server) writeEndpoint(w http.ResponseWriter, r *http.Request, status int, id string) error {
	e, err := s.d.Endpoint(r.Context(), id)
	if err != nil {
		return toAPIError(err, "no endpoint with ID "+id)
	}
	if status == http.StatusCreated {
		w.Header().Set("Location", "/v1/directory/endpoints/"+e.ID)
	}
	writeJSON(w, status, e)
	return nil
}

// addEndpoint creates a pending endpoint; the server assigns its ID.
func (s *server) addEndpoint(w http.ResponseWriter, r *http.Request) error {
	var in endpointInput
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.ID != "" {
		return fieldError("id", "assigned by the server; leave it out")
	}
	if err := in.readOnly(); err != nil {
		return err
	}
	var e directory.Endpoint
	in.apply(&e)
	e, err := s.d.AddEndpoint(r.Context(), e)
	if err != nil {
		return err
	}
	s.changed(r, "endpoint added", "endpoint", e.ID, "rcpt", e.Address)
	return s.writeEndpoint(w, r, http.StatusCreated, e.ID)
}

// putEndpoint replaces an endpoint's editable fields (all of them: a field
// left out is emptied, as PUT means).
func (s *server) putEndpoint(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	var in endpointInput
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.ID != "" && in.ID != id {
		return fieldError("id", "does not match the ID in the path ("+id+")")
	}
	if err := in.readOnly(); err != nil {
		return err
	}
	e, err := s.d.Endpoint(r.Context(), id)
	if err != nil {
		return toAPIError(err, "no endpoint with ID "+id)
	}
	in.apply(&e)
	if err := s.d.UpdateEndpoint(r.Context(), e); err != nil {
		return toAPIError(err, "no endpoint with ID "+id)
	}
	s.changed(r, "endpoint updated", "endpoint", id)
	return s.writeEndpoint(w, r, http.StatusOK, id)
}

// certificatesInput is the body of PUT .../endpoints/{id}/certificates:
// DER certificates (base64 in JSON), a leaf and its chain; [] removes all.
type certificatesInput struct {
	Certificates *[][]byte `json:"certificates"`
}

// putCertificates replaces an endpoint's S/MIME certificates and nothing
// else (the CLI's set-cert), audited as endpoint.certificates.
func (s *server) putCertificates(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	var in certificatesInput
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.Certificates == nil {
		return fieldError("certificates", "required ([] removes them all)")
	}
	if err := s.d.SetCertificates(r.Context(), id, *in.Certificates); err != nil {
		return toAPIError(err, "no endpoint with ID "+id)
	}
	s.changed(r, "endpoint certificates set", "endpoint", id)
	return s.writeEndpoint(w, r, http.StatusOK, id)
}

// Bodies of the action URLs.
type (
	reasonInput struct {
		Reason string `json:"reason"`
	}
	codeInput struct {
		Code string `json:"code"`
	}
	evidenceInput struct {
		Evidence string `json:"evidence"`
	}
	redirectInput struct {
		To string `json:"to"`
	}
)

// maxTextField bounds reasons and evidence: a sentence or a paragraph.
const maxTextField = 4096

// text checks a required free-text field.
func text(field, v string) (string, error) {
	v = strings.TrimSpace(v)
	switch {
	case v == "":
		return "", fieldError(field, "required")
	case len(v) > maxTextField:
		return "", fieldError(field, "longer than 4096 bytes")
	case strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\n' && r != '\t' }):
		return "", fieldError(field, "contains control characters")
	}
	return v, nil
}

// endpointAction runs one lifecycle step on an endpoint and answers with the
// endpoint as it is afterwards.
func (s *server) endpointAction(w http.ResponseWriter, r *http.Request) error {
	id, action := r.PathValue("id"), r.PathValue("action")
	ctx := r.Context()
	var err error
	status := http.StatusOK
	switch action {
	case "suspend", "retire":
		var in reasonInput
		if err := s.decodeJSON(w, r, &in); err != nil {
			return err
		}
		reason, err2 := text("reason", in.Reason)
		if err2 != nil {
			return err2
		}
		if action == "suspend" {
			err = s.d.Suspend(ctx, id, reason)
		} else {
			err = s.d.Retire(ctx, id, reason)
		}
	case "challenge":
		if r.ContentLength != 0 { // an empty object is fine too
			var in struct{}
			if err := s.decodeJSON(w, r, &in); err != nil {
				return err
			}
		}
		err, status = s.d.StartChallenge(ctx, id), http.StatusAccepted
	case "verify":
		var in codeInput
		if err := s.decodeJSON(w, r, &in); err != nil {
			return err
		}
		code, err2 := text("code", in.Code)
		if err2 != nil {
			return err2
		}
		err = s.d.ConfirmChallenge(ctx, id, code)
	case "attest":
		var in evidenceInput
		if err := s.decodeJSON(w, r, &in); err != nil {
			return err
		}
		evidence, err2 := text("evidence", in.Evidence)
		if err2 != nil {
			return err2
		}
		err = s.d.Attest(ctx, id, evidence)
	case "redirect":
		var in redirectInput
		if err := s.decodeJSON(w, r, &in); err != nil {
			return err
		}
		err = s.d.SetRedirect(ctx, id, strings.TrimSpace(in.To))
		var ve *directory.ValidationError
		if errors.As(err, &ve) { // the directory names the endpoint field; the request's is "to"
			if msg, ok := ve.Fields["redirect"]; ok {
				return fieldError("to", msg)
			}
		}
	default:
		return errorf(http.StatusNotFound, "no endpoint action %q (suspend, retire, challenge, verify, attest, redirect)", action)
	}
	if err != nil {
		return toAPIError(err, "no endpoint with ID "+id)
	}
	s.changed(r, "endpoint "+action, "endpoint", id)
	return s.writeEndpoint(w, r, status, id)
}
