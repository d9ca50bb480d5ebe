// Package static serves the document root of bayeuxhub: the chat demo, the
// live state page and the bayeuxhub.js client, or any folder given on the
// command line.
//
// It is the Go counterpart of http_server_generic in the Perl original
// (POE::Component::Server::Bayeux): a folder is answered with its first
// DirectoryIndex file or "Directory listing denied", a missing file with
// "Path '/x' not found", TypeExpires sets expiry by media type like Apache's
// mod_expires, and PostHandle may adjust the response headers.
//
// Unlike the original it answers only GET and HEAD, supports conditional and
// range requests (ETag, Last-Modified, If-None-Match, If-Modified-Since,
// Range), sends X-Content-Type-Options: nosniff on every response, and never
// reads outside the document root: request paths with "..", "." or empty
// elements, backslashes or control characters (such as an encoded NUL) are
// refused with 400, and when serving a folder on disk
// (Options.Dir) symbolic links that resolve outside it are refused with 403
// and files are opened through os.Root.
//
// Content types come from a built-in table (see [New]); text types carry a
// UTF-8 charset parameter. Unknown extensions fall back to
// mime.TypeByExtension and then to application/octet-stream.
package static
