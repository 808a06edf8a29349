package cecsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
)

// adminPrefix is where the unsigned admin endpoints live (Options.Admin).
const adminPrefix = "/_sim/"

// serveAdmin serves GET/POST/DELETE /_sim/faults, GET /_sim/manifest, GET /_sim/stats, GET /_sim/uploads,
// POST /_sim/release-late and POST /_sim/release-unavailable (see the package doc).
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case adminPrefix + "faults":
		switch r.Method {
		case http.MethodGet:
			s.send(w, r, nil, jsonReply(s.currentFaults()), Fault{})
		case http.MethodPost:
			body, err := readBody(r, maxRequestBody)
			if err != nil {
				s.send(w, r, nil, statusReply(http.StatusRequestEntityTooLarge, err.Error()), Fault{})
				return
			}
			var faults []Fault
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&faults); err != nil {
				s.send(w, r, nil, statusReply(http.StatusBadRequest, "faults: "+err.Error()), Fault{})
				return
			}
			for i, f := range faults {
				if err := f.Validate(); err != nil {
					s.send(w, r, nil, statusReply(http.StatusBadRequest, fmt.Sprintf("fault %d: %v", i, err)), Fault{})
					return
				}
			}
			s.SetFaults(faults...)
			s.send(w, r, nil, jsonReply(s.currentFaults()), Fault{})
		case http.MethodDelete:
			s.ClearFaults()
			s.send(w, r, nil, jsonReply(s.currentFaults()), Fault{})
		default:
			s.adminMethodNotAllowed(w, r, "GET, POST, DELETE")
		}
	case adminPrefix + "manifest":
		if r.Method != http.MethodGet {
			s.adminMethodNotAllowed(w, r, "GET")
			return
		}
		s.send(w, r, nil, jsonReply(s.manifest), Fault{})
	case adminPrefix + "uploads":
		if r.Method != http.MethodGet {
			s.adminMethodNotAllowed(w, r, "GET")
			return
		}
		s.send(w, r, nil, jsonReply(s.Uploads()), Fault{})
	case adminPrefix + "stats":
		if r.Method != http.MethodGet {
			s.adminMethodNotAllowed(w, r, "GET")
			return
		}
		s.send(w, r, nil, jsonReply(s.Stats()), Fault{})
	case adminPrefix + "release-late", adminPrefix + "release-unavailable":
		if r.Method != http.MethodPost {
			s.adminMethodNotAllowed(w, r, "POST")
			return
		}
		release := s.ReleaseLate
		if r.URL.Path == adminPrefix+"release-unavailable" {
			release = s.ReleaseUnavailable
		}
		s.send(w, r, nil, jsonReply(releaseReply{Released: release()}), Fault{})
	default:
		s.send(w, r, nil, statusReply(http.StatusNotFound, "no such admin endpoint: "+r.URL.Path), Fault{})
	}
}

func (s *Server) adminMethodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	rep := statusReply(http.StatusMethodNotAllowed, "allowed: "+allow)
	rep.header.Set("Allow", allow)
	s.send(w, r, nil, rep, Fault{})
}
