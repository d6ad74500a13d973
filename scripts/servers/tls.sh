# shellcheck shell=bash
# Throwaway TLS material for the test servers, made with openssl. Sourced, never run.
#
# Keys are ECDSA P-256 (instant to generate; accepted by OpenSSL, rustls and native-tls).
# Certificates are X.509 v3 with the extensions strict verifiers (rustls/webpki) insist on:
# the CA has basicConstraints CA:TRUE + keyCertSign; a leaf has CA:FALSE, serverAuth and
# its names only in subjectAltName.

# make_ca DIR NAME "COMMON NAME": write DIR/NAME.crt (mode 644) and DIR/NAME.key (600).
make_ca() {
    local dir=$1 name=$2 cn=$3
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/$name.key" -out "$dir/$name.crt" -days 30 -subj "/CN=$cn" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        >"$dir/$name.log" 2>&1 || { cat "$dir/$name.log" >&2; return 1; }
    chmod 600 "$dir/$name.key"
    chmod 644 "$dir/$name.crt"
}

# make_leaf DIR NAME CA_NAME "COMMON NAME" SAN [USAGE]: write DIR/NAME.crt (644) and
# DIR/NAME.key (600), signed by DIR/CA_NAME.{crt,key}. SAN is an openssl subjectAltName
# value, e.g. "IP:127.0.0.1,DNS:localhost". USAGE is the extended key usage (default
# serverAuth; a Redis Cluster node over TLS also needs clientAuth, since it presents its
# certificate to the other nodes' buses). Keep the common name something no client will ever
# use as a host name: libpq falls back to the CN when the certificate has no DNS name.
make_leaf() {
    local dir=$1 name=$2 ca=$3 cn=$4 san=$5 usage=${6:-serverAuth}
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature"
        echo "extendedKeyUsage=$usage"
        echo "subjectAltName=$san"
        echo "subjectKeyIdentifier=hash"
        echo "authorityKeyIdentifier=keyid"
    } >"$dir/$name.ext"
    {
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "/CN=$cn" &&
            openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" \
                -set_serial "0x$(openssl rand -hex 16)" -days 30 \
                -extfile "$dir/$name.ext" -out "$dir/$name.crt" &&
            openssl verify -CAfile "$dir/$ca.crt" "$dir/$name.crt"
    } >"$dir/$name.log" 2>&1 || { cat "$dir/$name.log" >&2; return 1; }
    chmod 600 "$dir/$name.key"
    chmod 644 "$dir/$name.crt"
}

# install_key_pair SRC_DIR NAME DEST_CERT DEST_KEY OWNER: copy a leaf certificate and its
# key for one server; the key is owned by the server's OS user (when root), mode 600.
install_key_pair() {
    local src=$1 name=$2 cert=$3 key=$4 owner=$5
    cp "$src/$name.crt" "$cert"
    cp "$src/$name.key" "$key"
    chmod 644 "$cert"
    chmod 600 "$key"
    if [ "$AS_ROOT" = 1 ]; then
        chown "$owner:" "$cert" "$key"
    fi
}
