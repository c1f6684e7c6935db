// Package ext is Traefik's extension point of its dynamic configuration
// (github.com/traefik/traefik/dynamic/ext), a module inside Traefik's repository that the Go
// module proxy does not serve: a build without extensions, as Traefik's own is.
package ext

// HTTP is a dynamic.HTTP extension (none here).
type HTTP struct{}

// Router is a dynamic.Router extension (none here).
type Router struct{}

// RouterIng is a RouterIng extension for ingress provider annotations (none here).
type RouterIng struct{}

// ToRouter converts RouterIng to a Router.
func (r RouterIng) ToRouter() Router { return Router{} }
