// Package htdocs holds the browser side of bayeuxhub: the chat demo, the live
// state page and the bayeuxhub.js client. The files are embedded in the binary
// so the server can serve them from any working directory.
package htdocs

import "embed"

// FS is the embedded document root served at "/" when no --document-root is given.
//
//go:embed *
var FS embed.FS
