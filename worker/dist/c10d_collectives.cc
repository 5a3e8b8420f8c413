#include "worker/dist/c10d_collectives.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/dino/torch_status.h"

namespace dino::dist {

absl::Status C10dCollectives::CheckDevice(const torch::Tensor& t) const {
  if (!t.defined()) return absl::InvalidArgumentError("collective on an undefined tensor");
  if (t.device().type() != group_->device().type()) {
    return absl::InvalidArgumentError(absl::StrCat("collective on a ", t.device().str(),
                                                   " tensor in a ", group_->backend_name(),
                                                   " group for ", group_->device().str()));
  }
  return absl::OkStatus();
}

absl::Status C10dCollectives::AllReduceSum(torch::Tensor& t) {
  DINO_RETURN_IF_ERROR(CheckDevice(t));
  return group_->AllReduceSum(t);
}

absl::Status C10dCollectives::Broadcast(torch::Tensor& t, int root) {
  DINO_RETURN_IF_ERROR(CheckDevice(t));
  return group_->Broadcast(t, root);
}

namespace {

// Per parameter: the plain sum and a position-weighted sum (weights 1..97 repeating), so swapped
// or permuted values are caught too. Element 0 is the parameter count.
torch::Tensor LocalChecksums(const std::vector<torch::Tensor>& params,
                             const torch::Device& device) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  parts.reserve(2 * params.size() + 1);
  parts.push_back(torch::full({1}, static_cast<double>(params.size()),
                              torch::TensorOptions().dtype(torch::kFloat64).device(device)));
  for (const auto& p : params) {
    auto flat = p.detach().reshape(-1).to(device, torch::kFloat64);
    auto weights =
        torch::remainder(torch::arange(flat.numel(), flat.options().dtype(torch::kFloat64)), 97.0) +
        1.0;
    parts.push_back(flat.sum().reshape({1}));
    parts.push_back((flat * weights).sum().reshape({1}));
  }
  return torch::cat(parts);
}

}  // namespace

absl::Status VerifySameParameters(Collectives* collectives,
                                  const std::vector<torch::Tensor>& params,
                                  const torch::Device& device) {
  const int world = collectives->world_size();
  const int rank = collectives->rank();
  // Rank r fills row r; after the sum every rank sees all rows and reaches the same verdict. The
  // row width must agree before the all-reduce, so it is fixed by a first all-reduce of the count.
  DINO_ASSIGN_OR_RETURN(
      torch::Tensor counts, TorchCallOr("parameter count", [&] {
        auto c =
            torch::zeros({world}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
        c[rank] = static_cast<double>(params.size());
        return c;
      }));
  DINO_RETURN_IF_ERROR(collectives->AllReduceSum(counts));
  auto counts_cpu = counts.cpu();
  for (int r = 0; r < world; ++r) {
    const double n = counts_cpu[r].item<double>();
    if (n != static_cast<double>(params.size())) {
      return absl::FailedPreconditionError(
          absl::StrCat("rank ", r, " has ", n, " parameters, rank ", rank, " has ", params.size(),
                       ": the ranks did not load the same checkpoint"));
    }
  }
  DINO_ASSIGN_OR_RETURN(torch::Tensor table, TorchCallOr("parameter checksums", [&] {
                          auto local = LocalChecksums(params, device);
                          auto t = torch::zeros({world, local.numel()}, local.options());
                          t[rank].copy_(local);
                          return t;
                        }));
  DINO_RETURN_IF_ERROR(collectives->AllReduceSum(table));
  auto cpu = table.cpu();
  auto acc = cpu.accessor<double, 2>();
  for (int r = 1; r < world; ++r) {
    for (int64_t j = 0; j < cpu.size(1); ++j) {
      const double a = acc[0][j];
      const double b = acc[r][j];
      if (std::abs(a - b) > 1e-9 * (std::abs(a) + std::abs(b)) + 1e-12) {
        const int64_t param = (j - 1) / 2;
        return absl::FailedPreconditionError(
            absl::StrCat("rank ", r, " differs from rank 0 in parameter ", param, " (checksum ", b,
                         " vs ", a, "): the ranks did not load the same checkpoint"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<double>> GlobalMeans(Collectives* collectives,
                                                absl::Span<const double> local,
                                                const torch::Device& device) {
  DINO_ASSIGN_OR_RETURN(torch::Tensor t, TorchCallOr("statistics", [&] {
                          return torch::tensor(std::vector<double>(local.begin(), local.end()),
                                               torch::TensorOptions().dtype(torch::kFloat64))
                              .to(device);
                        }));
  DINO_RETURN_IF_ERROR(collectives->AllReduceSum(t));
  auto cpu = t.cpu();
  std::vector<double> out(local.size());
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = cpu[static_cast<int64_t>(i)].item<double>() / collectives->world_size();
  }
  return out;
}

}  // namespace dino::dist
