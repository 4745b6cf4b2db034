#!/bin/sh
# The secrets docker-compose.yml's Kafka and workers use: a CA of this machine's own, the
# broker's certificate (for the names kafka and localhost) in a PKCS#12 keystore, and a
# password per SASL/PLAIN user (broker, worker, publisher) with the broker's JAAS file.
#   apache-kafka/make-certs.sh [directory]      (default: ./secrets; existing files are kept)
# Needs openssl. The files are readable by the containers' users: keep the directory to yourself.
set -eu

dir=${1:-secrets}
mkdir -p "$dir"
cd "$dir"
umask 022
days=825

password() { [ -s "$1" ] || openssl rand -hex 24 > "$1"; }

if [ ! -s ca.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days "$days" \
    -subj "/CN=borderflow docker-compose CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  chmod 600 ca.key
fi
if [ ! -s kafka.p12 ]; then
  password kafka.keystore.password
  cp kafka.keystore.password kafka.key.password  # a PKCS#12 key has the keystore's password
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout kafka.key -out kafka.pem -days "$days" \
    -subj "/CN=broker" -CA ca.pem -CAkey ca.key -addext basicConstraints=CA:FALSE \
    -addext extendedKeyUsage=serverAuth,clientAuth -addext subjectAltName=DNS:kafka,DNS:localhost,IP:127.0.0.1 2>/dev/null
  openssl pkcs12 -export -in kafka.pem -inkey kafka.key -certfile ca.pem -name kafka -out kafka.p12 \
    -passout "file:kafka.keystore.password"
  rm kafka.key
  chmod 644 kafka.p12  # the broker container's user reads it
fi
for user in broker worker publisher; do password "$user.password"; done

# the broker's SASL/PLAIN users, and how it logs in to itself (its listener is also the inter-broker one)
cat > kafka_server_jaas.conf <<JAAS
KafkaServer {
  org.apache.kafka.common.security.plain.PlainLoginModule required
  username="broker" password="$(cat broker.password)"
  user_broker="$(cat broker.password)"
  user_worker="$(cat worker.password)"
  user_publisher="$(cat publisher.password)";
};
JAAS
# for the broker's healthcheck (kafka-broker-api-versions.sh --command-config)
cat > client.properties <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="$(cat broker.password)";
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/secrets/ca.pem
PROPS
echo "secrets in $(pwd): CA ca.pem, users broker, worker, publisher (*.password)"
