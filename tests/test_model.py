import json
import math

import pytest
import torch

from lstm_trainer.config import ForecasterConfig, ModelConfig
from lstm_trainer.model.forecaster import LSTMForecaster


def test_reference_initialisation() -> None:
    torch.manual_seed(0)
    model = LSTMForecaster(ForecasterConfig(ModelConfig(hidden_size=16, num_layers=2), seq_length=20))
    hidden = 16
    for name, param in model.rnn.named_parameters():
        if "weight_hh" in name:
            # Orthogonal: the (4H, H) matrix has orthonormal columns.
            assert torch.allclose(param.T @ param, torch.eye(hidden), atol=1e-5), name
        elif "weight_ih" in name:
            fan_out, fan_in = param.shape
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert param.abs().max() <= bound + 1e-6, name
            assert param.abs().max() > 0.5 * bound, name  # uniform over the whole Xavier range
        elif "bias" in name:
            forget = param[hidden : 2 * hidden]
            rest = torch.cat([param[:hidden], param[2 * hidden :]])
            assert torch.all(forget == 1.0) and torch.all(rest == 0.0), name


def test_gru_has_zero_biases_and_the_same_interface() -> None:
    model = LSTMForecaster(ForecasterConfig(ModelConfig(cell="gru", hidden_size=8), seq_length=12))
    assert isinstance(model.rnn, torch.nn.GRU)
    assert all(torch.all(p == 0) for n, p in model.rnn.named_parameters() if "bias" in n)
    assert model(torch.randn(5, 12)).shape == (5,)


@pytest.mark.parametrize("shape", [(4, 20), (4, 20, 1)])
def test_forward_shapes(shape: tuple[int, ...]) -> None:
    assert LSTMForecaster(ForecasterConfig(ModelConfig(hidden_size=8), seq_length=20))(torch.randn(*shape)).shape == (
        4,
    )


def test_save_and_load_round_trip(tmp_path) -> None:
    model = LSTMForecaster(
        ForecasterConfig(ModelConfig(hidden_size=8, num_layers=1, dropout=0.0), seq_length=10)
    ).eval()
    with torch.no_grad():  # trained-looking weights, so the round trip is not of zeros
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    x = torch.randn(3, 10)
    model.save_pretrained(tmp_path)
    loaded = LSTMForecaster.from_pretrained(tmp_path)
    assert loaded.config == model.config and loaded.seq_length == 10
    assert torch.equal(loaded(x), model(x))


def test_the_config_json_holds_the_whole_shape(tmp_path) -> None:
    config = ForecasterConfig(
        ModelConfig(hidden_size=8, quantiles=(0.1, 0.5, 0.9)), 12, horizon=3, covariates=(1, 2, 0)
    )
    LSTMForecaster(config).save_pretrained(tmp_path)
    record = json.loads((tmp_path / "config.json").read_text())
    assert (record["seq_length"], record["horizon"], record["quantiles"]) == (12, 3, [0.1, 0.5, 0.9])
    assert record["covariates"] == {"past": 1, "future": 2, "static": 0}
    assert LSTMForecaster.from_pretrained(tmp_path).config == config == ForecasterConfig.from_dict(record)


# config.json as the code before ForecasterConfig wrote it for the default run (output_dir/model).
EARLIER_CONFIG_JSON = """{
  "cell": "lstm", "input_size": 1, "hidden_size": 8, "num_layers": 2, "dropout": 0.2, "window_norm": "window",
  "head": "delta", "linear_skip": null, "loss": "mse", "distribution": "none", "quantiles": null,
  "seq_length": 10, "horizon": 1
}"""


def test_a_model_folder_of_the_earlier_layout_loads_and_forecasts_the_same(tmp_path) -> None:
    from lstm_trainer.errors import UserError

    model = LSTMForecaster(ForecasterConfig(ModelConfig(hidden_size=8), seq_length=10)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    model.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(EARLIER_CONFIG_JSON)
    loaded = LSTMForecaster.from_pretrained(tmp_path)
    assert loaded.config == model.config and loaded.covariates == (0, 0, 0)
    x = torch.randn(3, 10)
    assert torch.equal(loaded(x), model(x))
    # Older still: no window length. It cannot be used (predict cuts the input to the window), so it says so.
    (tmp_path / "config.json").write_text(EARLIER_CONFIG_JSON.replace('"seq_length": 10, ', ""))
    with pytest.raises(UserError, match="does not say the window length it was trained on"):
        LSTMForecaster.from_pretrained(tmp_path)


def test_broken_model_folders_name_the_file(tmp_path) -> None:
    from lstm_trainer.errors import UserError

    LSTMForecaster(ForecasterConfig(ModelConfig(hidden_size=8), seq_length=10)).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(UserError, match=f"model file {weights} is truncated or corrupted"):
        LSTMForecaster.from_pretrained(tmp_path)
    LSTMForecaster(ForecasterConfig(ModelConfig(hidden_size=16), seq_length=10)).save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"hidden_size": 8, "seq_length": 10, "horizon": 1}')
    with pytest.raises(UserError, match="does not match"):
        LSTMForecaster.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"hidden_size": 16, "seq_length": 10}')  # no horizon
    with pytest.raises(UserError, match=f"model file {tmp_path / 'config.json'} is not a valid model config"):
        LSTMForecaster.from_pretrained(tmp_path)
    weights.unlink()
    with pytest.raises(UserError, match=f"model file {weights} is missing"):
        LSTMForecaster.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("cell", "layers", "inputs", "skip", "covariates"),
    [
        ("lstm", 1, 1, None, (0, 0, 0)),
        ("lstm", 3, 2, 0, (0, 0, 0)),
        ("gru", 2, 1, 4, (0, 0, 0)),
        ("lstm", 2, 1, None, (1, 2, 3)),
    ],
)
def test_parameter_count_from_the_shape_matches_the_module(
    cell: str, layers: int, inputs: int, skip: int | None, covariates: tuple[int, int, int]
) -> None:
    model = ModelConfig(cell=cell, num_layers=layers, input_size=inputs, hidden_size=12, linear_skip=skip)
    config = ForecasterConfig(model, seq_length=10, covariates=covariates)
    assert config.num_parameters() == sum(p.numel() for p in LSTMForecaster(config).parameters())


@pytest.mark.parametrize("options", [{}, {"linear_skip": 0}, {"linear_skip": 3, "cell": "gru"}])
def test_untrained_model_forecasts_next_equals_last(options: dict) -> None:
    # Trending and far from the training range: the residual head starts at persistence wherever the level is.
    x = 1000.0 + 50.0 * torch.randn(6, 16).cumsum(dim=1)
    model = LSTMForecaster(ForecasterConfig(ModelConfig(hidden_size=8, **options), seq_length=16)).eval()
    assert torch.allclose(model(x), x[:, -1], rtol=1e-5)


def test_window_norm_makes_forecasts_follow_a_shift_and_scale_of_the_window() -> None:
    torch.manual_seed(0)
    model = LSTMForecaster(
        ForecasterConfig(ModelConfig(hidden_size=8, num_layers=1, dropout=0.0), seq_length=12)
    ).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn_like(param))
        x = torch.randn(5, 12)
        # Scaled by 100 so the variance floor is negligible; a window is scaled by its own statistics.
        assert torch.allclose(model(100 * x + 7.0), 100 * model(x) + 7.0, rtol=1e-4, atol=1e-2)
        plain = LSTMForecaster(
            ForecasterConfig(ModelConfig(hidden_size=8, window_norm="none", head="level", linear_skip=0), seq_length=12)
        )
        assert not torch.allclose(plain(100 * x + 7.0), 100 * plain(x) + 7.0, atol=1.0)


def test_fit_linear_skip_starts_training_at_the_least_squares_autoregression() -> None:
    # A noisy cycle: the linear AR forecasts it far better than next = last.
    t = torch.arange(3000, dtype=torch.float64)
    series = torch.sin(0.3 * t) + 0.05 * torch.randn(
        3000, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    windows = series.unfold(0, 16, 1)[:-1].float()  # [N, 16]
    targets = series[16:].float()
    model = LSTMForecaster(ForecasterConfig(ModelConfig(hidden_size=8), seq_length=16)).eval()
    with torch.no_grad():
        naive = float(((model(windows) - targets) ** 2).mean())
    model.fit_linear_skip(windows, targets)
    with torch.no_grad():
        fitted = float(((model(windows) - targets) ** 2).mean())
    assert naive == pytest.approx(float(((windows[:, -1] - targets) ** 2).mean()), rel=1e-4)
    assert fitted < 0.2 * naive and fitted < 3 * 0.05**2, (fitted, naive)
    plain = LSTMForecaster(ForecasterConfig(ModelConfig(hidden_size=8, linear_skip=0), seq_length=16))
    plain.fit_linear_skip(windows, targets)  # nothing to fit: still next = last
    assert torch.allclose(plain(windows), windows[:, -1], rtol=1e-5)
