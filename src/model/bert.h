// A BERT encoder (Hugging Face BertModel: post-LN blocks, learned absolute positions, token types) for the
// two places ICU uses one, inference only: BERTScore's token embeddings (bert-base-uncased, layer 9) and the
// sentence embedder of the neighbour search (all-MiniLM-L6-v2, mean pooled). Weights come from an HF
// folder (config.json + safetensors), named as BertModel saves them, with or without the "bert." prefix
// of the task heads. Dimension letters: B batch, T tokens, C hidden, H heads, D = C / H.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include <torch/types.h>

namespace lethe::model {

struct BertConfig {
  int64_t vocab_size = 0, hidden_size = 0, num_layers = 0, num_heads = 0, intermediate_size = 0;
  int64_t max_position_embeddings = 512, type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  std::string hidden_act = "gelu";  // gelu (erf) | gelu_new | relu
};

class Bert {
 public:
  // Loads config.json and the weights; only the first `max_layers` encoder layers are kept (0 = all), as
  // bert_score truncates the encoder to the layer it reads. The fp32 weights live on `device`. InputError
  // naming the file on anything missing.
  static Bert load(const std::filesystem::path& dir, int64_t max_layers = 0,
                   torch::Device device = torch::kCPU);

  // ids, mask: [B, T] int64 (mask 1 = token, 0 = padding), on any device (ids are range-checked where they
  // are: pass host ids to avoid a device sync). The output of the last kept layer, [B, T, C] fp32, on the
  // model's device.
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& mask) const;

  const BertConfig& config() const { return cfg_; }
  int64_t layers() const { return layers_; }
  torch::Device device() const { return device_; }

 private:
  const torch::Tensor& w(const std::string& name) const { return weights_.at(name); }
  BertConfig cfg_;
  int64_t layers_ = 0;
  torch::Device device_ = torch::kCPU;
  std::map<std::string, torch::Tensor> weights_;  // BertModel names without a prefix
};

}  // namespace lethe::model
