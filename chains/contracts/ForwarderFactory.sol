// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// The factory's view the forwarder needs while it is being created (see Forwarder).
interface ISweepContext {
    function sweepContext() external view returns (address payable to, address[] memory tokens);
}

/// A deposit address's one-shot forwarder. All the work happens in the constructor, so the init
/// code is the same for every salt (the address depends only on factory + salt) and no runtime
/// code is ever stored: the constructor pays the listed token balances and the native balance to
/// the hot wallet and self-destructs. Created and destroyed in one transaction, EIP-6780 deletes
/// the account, so the address is an empty account again: it accepts plain 21,000-gas transfers
/// and the next sweep can CREATE2 at the same address.
contract Forwarder {
    constructor() {
        (address payable to, address[] memory tokens) = ISweepContext(msg.sender).sweepContext();
        for (uint256 i = 0; i < tokens.length; i++) {
            address token = tokens[i];
            (bool ok, bytes memory data) =
                token.staticcall(abi.encodeWithSelector(0x70a08231, address(this)));
            if (!ok || data.length < 32) continue;
            uint256 balance = abi.decode(data, (uint256));
            if (balance == 0) continue;
            // Low-level call: tokens that return nothing (USDT-style) still work, and one failing
            // token must not block the other balances. The factory measures what actually moved.
            token.call(abi.encodeWithSelector(0xa9059cbb, to, balance));
        }
        // An explicit call (not only SELFDESTRUCT's transfer) so tracers show an ordinary internal
        // value transfer from the deposit address to the hot wallet.
        if (address(this).balance > 0) {
            (bool paid,) = to.call{value: address(this).balance}("");
            paid;
        }
        selfdestruct(to);
    }
}

/// Counterfactual deposit addresses: `computeAddress(salt)` is where customers send funds; only
/// the hot wallet may `sweep`, and swept value can only go to the hot wallet.
contract ForwarderFactory is ISweepContext {
    /// Where every swept amount goes; also the only caller allowed to sweep.
    address payable public immutable hotWallet;
    bytes32 public constant FORWARDER_INIT_CODE_HASH = keccak256(type(Forwarder).creationCode);

    /// One per (deposit address, asset) with a non-zero amount; token is address(0) for native.
    event Swept(bytes32 indexed salt, address indexed depositAddress, address indexed token, uint256 amount);

    error NotHotWallet(address caller);
    error UnexpectedForwarderAddress(address expected, address created);

    address[] private currentTokens;
    bool private sweeping;

    constructor(address payable hotWallet_) {
        hotWallet = hotWallet_;
    }

    function computeAddress(bytes32 salt) public view returns (address) {
        return address(
            uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, FORWARDER_INIT_CODE_HASH))))
        );
    }

    function sweepContext() external view returns (address payable to, address[] memory tokens) {
        return (hotWallet, sweeping ? currentTokens : new address[](0));
    }

    /// Sweep the native balance and the listed token balances of every salt's address.
    function sweep(bytes32[] calldata salts, address[] calldata tokens) external {
        if (msg.sender != hotWallet) revert NotHotWallet(msg.sender);
        currentTokens = tokens;
        sweeping = true;
        uint256[] memory before = new uint256[](tokens.length);
        for (uint256 s = 0; s < salts.length; s++) {
            bytes32 salt = salts[s];
            address depositAddress = computeAddress(salt);
            uint256 nativeBefore = depositAddress.balance;
            for (uint256 t = 0; t < tokens.length; t++) {
                before[t] = balanceOf(tokens[t], depositAddress);
            }
            address created = address(new Forwarder{salt: salt}());
            // Holds by construction; checked so a compiler or EVM change cannot sweep elsewhere silently.
            if (created != depositAddress) revert UnexpectedForwarderAddress(depositAddress, created);
            uint256 nativeAfter = depositAddress.balance;
            if (nativeBefore > nativeAfter) {
                emit Swept(salt, depositAddress, address(0), nativeBefore - nativeAfter);
            }
            for (uint256 t = 0; t < tokens.length; t++) {
                uint256 remaining = balanceOf(tokens[t], depositAddress);
                if (before[t] > remaining) {
                    emit Swept(salt, depositAddress, tokens[t], before[t] - remaining);
                }
            }
        }
        delete currentTokens;
        sweeping = false;
    }

    function balanceOf(address token, address account) private view returns (uint256) {
        (bool ok, bytes memory data) = token.staticcall(abi.encodeWithSelector(0x70a08231, account));
        if (!ok || data.length < 32) return 0;
        return abi.decode(data, (uint256));
    }
}
