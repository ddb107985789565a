output "recorders" {
  description = "Each recorder: its public address, its HTTP URL (/healthz, /metrics, /v1/recordings), its instance."
  value = {
    for id, n in module.node : id => {
      public_ip   = n.public_ip
      http_url    = var.recorders[id].http_url
      instance_id = n.instance_id
    }
  }
}
