import math

import pytest
import torch

from lstm_trainer.config import ModelConfig
from lstm_trainer.model import LSTMForecaster


def test_reference_initialisation() -> None:
    torch.manual_seed(0)
    model = LSTMForecaster(ModelConfig(hidden_size=16, num_layers=2))
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
    model = LSTMForecaster(ModelConfig(cell="gru", hidden_size=8))
    assert isinstance(model.rnn, torch.nn.GRU)
    assert all(torch.all(p == 0) for n, p in model.rnn.named_parameters() if "bias" in n)
    assert model(torch.randn(5, 12)).shape == (5,)


@pytest.mark.parametrize("shape", [(4, 20), (4, 20, 1)])
def test_forward_shapes(shape: tuple[int, ...]) -> None:
    assert LSTMForecaster(ModelConfig(hidden_size=8))(torch.randn(*shape)).shape == (4,)


def test_save_and_load_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = LSTMForecaster(ModelConfig(hidden_size=8, num_layers=1, dropout=0.0)).eval()
    x = torch.randn(3, 10)
    model.save_pretrained(tmp_path)
    loaded = LSTMForecaster.from_pretrained(tmp_path)
    assert loaded.config == model.config
    assert torch.equal(loaded(x), model(x))


def test_broken_model_folders_name_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from lstm_trainer.errors import UserError

    LSTMForecaster(ModelConfig(hidden_size=8)).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(UserError, match=f"model file {weights} is truncated or corrupted"):
        LSTMForecaster.from_pretrained(tmp_path)
    LSTMForecaster(ModelConfig(hidden_size=16)).save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"hidden_size": 8}')
    with pytest.raises(UserError, match="does not match"):
        LSTMForecaster.from_pretrained(tmp_path)
    weights.unlink()
    with pytest.raises(UserError, match=f"model file {weights} is missing"):
        LSTMForecaster.from_pretrained(tmp_path)


@pytest.mark.parametrize(("cell", "layers", "inputs"), [("lstm", 1, 1), ("lstm", 3, 2), ("gru", 2, 1)])
def test_parameter_count_from_the_shape_matches_the_module(cell: str, layers: int, inputs: int) -> None:
    config = ModelConfig(cell=cell, num_layers=layers, input_size=inputs, hidden_size=12)
    assert config.num_parameters() == sum(p.numel() for p in LSTMForecaster(config).parameters())
