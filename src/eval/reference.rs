//! The published reference numbers (method.md section 10) as data, in one place, each row
//! with where it comes from: `clipgan report --reference` puts them beside a run's
//! results. R-precision is stored as a fraction (the published percent / 100), as
//! results.json stores it. Nothing here is measured by clipgan.

/// One published row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Published {
    pub model: &'static str,
    /// `CUB` or `COCO`.
    pub dataset: &'static str,
    /// R-precision mean and std over 10 folds, as fractions.
    pub r_precision: Option<(f64, f64)>,
    /// Inception Score mean and, where published, its std.
    pub is: Option<(f64, Option<f64>)>,
    pub fid: Option<f64>,
    /// The encoder the published R-precision used.
    pub r_encoder: &'static str,
    /// The Inception the published IS used (the standard per dataset: method.md §7).
    pub is_inception: &'static str,
    /// Where the numbers come from.
    pub source: &'static str,
}

/// AttnGAN/DM-GAN measured R-precision with their DAMSM encoders.
const DAMSM: &str = "DAMSM (AttnGAN's)";
const CUB_IS: &str = "cub-stackgan";
const COCO_IS: &str = "imagenet";

/// method.md section 10, row for row.
pub const PUBLISHED: &[Published] = &[
    Published {
        model: "AttnGAN",
        dataset: "CUB",
        r_precision: Some((0.6782, 0.0443)),
        is: Some((4.36, Some(0.03))),
        fid: Some(23.98),
        r_encoder: DAMSM,
        is_inception: CUB_IS,
        source: "method.md §10: Xu et al., AttnGAN (CVPR 2018); FID as listed by DM-GAN (Zhu et al., CVPR 2019)",
    },
    Published {
        model: "DM-GAN (paper)",
        dataset: "CUB",
        r_precision: Some((0.7231, 0.0091)),
        is: Some((4.75, Some(0.07))),
        fid: Some(16.09),
        r_encoder: DAMSM,
        is_inception: CUB_IS,
        source: "method.md §10: Zhu et al., DM-GAN (CVPR 2019)",
    },
    Published {
        model: "DM-GAN (released model)",
        dataset: "CUB",
        r_precision: Some((0.7658, 0.0053)),
        is: Some((4.71, Some(0.06))),
        fid: Some(15.34),
        r_encoder: DAMSM,
        is_inception: CUB_IS,
        source: "method.md §10: DM-GAN's released bird model (IS and pytorch-fid FID as in DM-GAN's README, whose R-precision for it reads 74.48 ± 0.61)",
    },
    Published {
        model: "DM-GAN+CL",
        dataset: "CUB",
        r_precision: None,
        is: Some((4.77, None)),
        fid: Some(14.38),
        r_encoder: DAMSM,
        is_inception: CUB_IS,
        source: "method.md §10: Ye et al., DM-GAN+CL (BMVC 2021)",
    },
    Published {
        model: "AttnGAN",
        dataset: "COCO",
        r_precision: Some((0.8547, 0.0369)),
        is: Some((25.89, Some(0.47))),
        fid: Some(35.49),
        r_encoder: DAMSM,
        is_inception: COCO_IS,
        source: "method.md §10: Xu et al., AttnGAN (CVPR 2018); FID as listed by DM-GAN (Zhu et al., CVPR 2019)",
    },
    Published {
        model: "DM-GAN (paper)",
        dataset: "COCO",
        r_precision: Some((0.8856, 0.0028)),
        is: Some((30.49, Some(0.57))),
        fid: Some(32.64),
        r_encoder: DAMSM,
        is_inception: COCO_IS,
        source: "method.md §10: Zhu et al., DM-GAN (CVPR 2019)",
    },
    Published {
        model: "DM-GAN+CL",
        dataset: "COCO",
        r_precision: None,
        is: Some((33.34, None)),
        fid: Some(20.79),
        r_encoder: DAMSM,
        is_inception: COCO_IS,
        source: "method.md §10: Ye et al., DM-GAN+CL (BMVC 2021)",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rows_of_method_md_section_10() {
        assert_eq!(PUBLISHED.len(), 7);
        assert_eq!(PUBLISHED.iter().filter(|p| p.dataset == "CUB").count(), 4);
        let released = PUBLISHED.iter().find(|p| p.model == "DM-GAN (released model)").unwrap();
        assert_eq!((released.r_precision, released.is, released.fid), (Some((0.7658, 0.0053)), Some((4.71, Some(0.06))), Some(15.34)));
        // Every row says where it comes from and which Inception its IS used.
        assert!(PUBLISHED.iter().all(|p| p.source.starts_with("method.md §10") && !p.is_inception.is_empty()));
    }
}
