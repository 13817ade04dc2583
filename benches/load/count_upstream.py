"""HTTP/1.1 keep-alive upstream for benches/load/upstream_reuse.sh: answers every request 200 and
writes "<connections accepted> <requests answered>" to a file once a second."""
import socket, threading, sys
port = int(sys.argv[1])
counts_path = sys.argv[2]
conns = 0; reqs = 0; lock = threading.Lock()
def serve(c):
    global reqs
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d: return
                buf += d
            head, buf = buf.split(b"\r\n\r\n", 1)
            with lock: reqs += 1
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    except OSError:
        pass
    finally:
        c.close()
def report():
    import time
    while True:
        time.sleep(1)
        with open(counts_path, "w") as f: f.write(f"{conns} {reqs}\n")
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(1024)
threading.Thread(target=report, daemon=True).start()
while True:
    c, _ = s.accept()
    with lock: conns += 1
    threading.Thread(target=serve, args=(c,), daemon=True).start()
