output "selectors" {
  description = "Each selector: its public address, its API URL, its instance."
  value = {
    for id, n in module.node : id => {
      public_ip   = n.public_ip
      api_url     = var.selectors[id].api_url
      instance_id = n.instance_id
    }
  }
}
