// TinySpec: the smallest JobSpec that validates (a synthetic dataset on one CPU rank), for the
// spec tests and the coordinator's.
#pragma once

#include "dino/v1/job.pb.h"

namespace dino::spec::testing {

inline dino::v1::JobSpec TinySpec(int world_size = 1) {
  dino::v1::JobSpec spec;
  spec.set_name("tiny");
  spec.mutable_data()->set_kind(dino::v1::DATASET_KIND_SYNTHETIC);
  spec.mutable_resources()->set_world_size(world_size);
  spec.mutable_augmentation()->set_global_crop_size(32);
  spec.mutable_augmentation()->set_local_crop_size(16);
  spec.mutable_model()->set_patch_size(8);
  spec.mutable_optim()->set_epochs(2);
  spec.mutable_optim()->set_warmup_epochs(0);
  return spec;
}

}  // namespace dino::spec::testing
